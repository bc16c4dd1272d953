"""The hosts page in a real Chromium: two real agents push to a real worker, the real
collector learns their pace; the page lists both with sparklines drawn, and when one
agent stops its row turns down by itself (no reload), a host that starts meanwhile gets a
row, in Spanish, with no serious axe finding. Screenshots go to test-artifacts/screenshots/."""

import os
import signal
import subprocess
import sys
import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from api.models import ApiToken
from deploy.supervisor import Supervisor
from hosts import liveness
from tests.e2e.conftest import ARTIFACTS, ROOT
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
AGENT_DIR = ROOT / "agent"
AXE = Axe()


def blocking_violations(page):
    results = AXE.run(page)
    found = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def wait_for(predicate, message, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def agents(tmp_path):
    started = []
    paths = [str(AGENT_DIR), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def start(url, token, host):
        args = ["--url", url, "--token", token, "--host", host, "--interval", "0.5"]
        process = subprocess.Popen(
            [sys.executable, "-m", "livedash_agent", *args, "--buffer-dir", str(tmp_path / host)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"{host}.log", "ab"),  # noqa: SIM115 (the process holds it)
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def test_two_hosts_with_sparklines_and_one_going_down(
    chromium, open_page, web_workers, subprocess_env, agents, alice
):
    (url,) = web_workers(1)
    _token, raw = ApiToken.create("fleet", metric_patterns=["*"])
    supervisor = Supervisor(env=subprocess_env)
    try:
        supervisor.python("collector", "manage.py", "collect_metrics")
        agents(url, raw, "web-a")
        quiet = agents(url, raw, "web-b")

        def paced():
            seen = liveness.seen()
            return all((seen.get(host) or {}).get("interval") for host in ("web-a", "web-b"))

        wait_for(paced, "both agents' pace learned by the collector")
        # A few seconds of history for the sparklines.
        time.sleep(2)

        context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="es")
        cookie_name, value = next(iter(session_cookie(alice).items()))
        context.add_cookies([{"name": cookie_name, "value": value, "url": url}])
        page = open_page("hosts-es", context=context)
        page.goto(url + "/hosts/?q=web-")
        assert page.locator("h2").inner_text() == "Equipos"
        rows = page.locator("tr.host-row")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.host)") == ["web-a", "web-b"]
        # Sparklines: a line of several points in every metric of both hosts.
        page.wait_for_function(
            """() => [...document.querySelectorAll('tr.host-row svg.spark')]
                     .every(svg => svg.querySelector('polyline') && Number(svg.dataset.points) >= 3)"""
        )
        assert page.locator('tr[data-host="web-a"] .status-word').inner_text() == "activo"
        link = page.locator('tr[data-host="web-a"] a.host-link').get_attribute("href")
        assert link == "/d/host-overview/?var-host=web-a"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "hosts-up-es.png"), full_page=True)
        assert blocking_violations(page) == []

        # A host that starts while the page is open gets a row of its own.
        agents(url, raw, "web-c")
        page.wait_for_function("""() => document.querySelector('tr[data-host="web-c"] svg.spark polyline')""")
        assert page.locator('tr[data-host="web-c"] .status-word').inner_text() == "activo"
        assert page.locator('tr[data-host="web-c"] a.host-link').get_attribute("href") == (
            "/d/host-overview/?var-host=web-c"
        )
        quiet.send_signal(signal.SIGTERM)
        assert quiet.wait(30) == 0
        # Down by itself, without a reload: three of its half-second intervals.
        page.wait_for_function(
            """() => document.querySelector('tr[data-host="web-b"]').dataset.status === 'down'"""
        )
        assert page.locator('tr[data-host="web-b"] .status-word').inner_text() == "caído"
        assert page.locator('tr[data-host="web-a"]').get_attribute("data-status") == "up"
        assert page.locator("#hosts-summary").inner_text() == "3 equipos · 1 caído"
        page.screenshot(path=str(SCREENSHOTS / "hosts-one-down-es.png"), full_page=True)
        assert blocking_violations(page) == []
        # The server says the same.
        page.goto(url + "/hosts/?q=web-&status=down")
        assert page.locator("tr.host-row").evaluate_all("rows => rows.map(r => r.dataset.host)") == ["web-b"]
        errors = [line for line in page.console_lines if "[pageerror]" in line or "[error]" in line]
        assert errors == []
    finally:
        supervisor.stop()

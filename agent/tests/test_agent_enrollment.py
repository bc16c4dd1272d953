"""Enrollment end to end: a real `livedash-agent` process with an enrollment token
against a real worker stores its own token (0600), reuses it on restart, and that token
is refused for any other host."""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async

from api.models import ApiToken
from tests.realclients import EventStream, wait_until

pytestmark = pytest.mark.slow

AGENT_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def enrollment_token(manage):
    result = manage("create_token", "fleet-enroll", "--enroll")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def start_agent(url, enroll_token, host, state, log):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(AGENT_DIR), os.environ.get("PYTHONPATH", "")])}
    args = ["--url", url, "--enroll-token", enroll_token, "--host", host, "--interval", "0.3"]
    return subprocess.Popen(
        [sys.executable, "-m", "livedash_agent", *args, "--buffer-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 (the process holds it)
    )


def stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


async def test_an_agent_enrolls_once_stores_its_token_and_pushes_only_its_host(
    web_workers, enrollment_token, alice_cookies, tmp_path
):
    (url,) = web_workers(1)
    state = tmp_path / "state"
    token_file = state / "token.json"
    async with EventStream(url, ["metrics"], alice_cookies) as stream:
        agent = start_agent(url, enrollment_token, "enrolled-1", state, tmp_path / "agent.log")
        try:

            def cpu_of_the_host():
                return any(
                    d["name"] == "cpu" and d["labels"] == {"host": "enrolled-1"}
                    for d in (e["data"] for e in stream.of_type("metric"))
                )

            await wait_until(cpu_of_the_host, message="the enrolled agent's cpu")
        finally:
            stop(agent)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = token_file.read_text()
    (token,) = await sync_to_async(list)(ApiToken.objects.filter(host="enrolled-1"))
    assert not token.revoked and token.metric_patterns == ["*"]

    # A restart reuses the stored token: enrolling again would be refused (409).
    again = start_agent(url, enrollment_token, "enrolled-1", state, tmp_path / "agent.log")
    try:
        await wait_until(
            lambda: "using the token stored" in (tmp_path / "agent.log").read_text(), message="a reuse"
        )
        assert again.poll() is None
    finally:
        stop(again)
    assert token_file.read_text() == first
    assert await ApiToken.objects.filter(host="enrolled-1").acount() == 1

    # The host token pushes nothing for another host.
    raw = json.loads(first)["token"]
    async with httpx.AsyncClient(base_url=url) as client:
        line = "cpu,host=other value=1"
        response = await client.post("/api/v2/write", content=line, headers={"Authorization": f"Token {raw}"})
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
        response = await client.post(
            "/api/v2/write", content="cpu,host=enrolled-1 value=1", headers={"Authorization": f"Token {raw}"}
        )
        assert response.status_code == 204


async def test_an_agent_whose_host_is_enrolled_already_exits_with_the_reason(
    web_workers, enrollment_token, manage, tmp_path
):
    (url,) = web_workers(1)
    first = start_agent(url, enrollment_token, "enrolled-2", tmp_path / "a", tmp_path / "a.log")
    try:
        await wait_until(lambda: (tmp_path / "a" / "token.json").exists(), message="a first enrollment")
    finally:
        stop(first)
    second = start_agent(url, enrollment_token, "enrolled-2", tmp_path / "b", tmp_path / "b.log")
    assert second.wait(30) == 1
    assert "already enrolled" in (tmp_path / "b.log").read_text()

"""A real Chromium driven by Playwright, with evidence kept when a test fails.

Chromium comes from tests/browser.py. Every page a test opens records its console;
on failure each page's screenshot and console log go to test-artifacts/<test>/.
"""

import re

import pytest

from conftest import ROOT
from tests.browser import headless_chromium

ARTIFACTS = ROOT / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell, at teardown, whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(node):
    return any(getattr(getattr(node, f"report_{when}", None), "failed", False) for when in ("setup", "call"))


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread while the browser is up;
    # the test's own ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def chromium():
    """One Chromium per test: a session-wide sync Playwright would leave its event loop
    in the main thread and break the ORM and async tests that run after it."""
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def open_page(chromium, request):
    """`open_page(name)` gives a page in its own browser context (its own cookies, like a
    separate browser); `open_page(name, context=other.context)` a second tab beside another."""
    pages = []

    def open_(name, context=None):
        context = context or chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.console_lines = []
        page.on("console", lambda msg: page.console_lines.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda exc: page.console_lines.append(f"[pageerror] {exc}"))
        page.on("requestfailed", lambda req: page.console_lines.append(f"[requestfailed] {req.url}"))
        page.on(
            "response",
            lambda res: res.status >= 400 and page.console_lines.append(f"[http {res.status}] {res.url}"),
        )
        pages.append((name, page))
        return page

    yield open_
    if _failed(request.node):
        _save_evidence(request.node.nodeid, pages)
    closed = set()
    for _, page in pages:
        if id(page.context) not in closed:
            closed.add(id(page.context))
            page.context.close()


def _save_evidence(nodeid, pages):
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    for name, page in pages:
        try:
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page still gets its console saved
            page.console_lines.append(f"[screenshot failed] {exc}")
        (folder / f"{name}.console.log").write_text("\n".join(page.console_lines) + "\n")
    print(f"\nbrowser evidence saved in {folder}")

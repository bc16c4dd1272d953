"""Debian's Chromium under Playwright, launched one way for every browser test.

Debian's chromium is used because `playwright install` cannot download a browser
here, and the suite must not need it.
"""

import contextlib
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def headless_chromium():
    """A headless Chromium for the block. Playwright's sync API runs an event loop in
    this thread meanwhile, so keep the block to the tests that need the browser."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

"""The account pages in a real Chromium against a real worker: signed in through the
login form, translated, axe-clean, and a session ended from the page."""

import pytest
from axe_playwright_python.sync_playwright import Axe

from conftest import PASSWORD

pytestmark = pytest.mark.slow

BLOCKING = ("serious", "critical")
AXE = Axe()


@pytest.fixture
def base_url(daphne_workers):
    (url,) = daphne_workers(1)
    return url


def blocking_violations(page):
    found = [v for v in AXE.run(page).response["violations"] if v.get("impact") in BLOCKING]
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def sign_in(chromium, open_page, base_url, user, lang, name):
    context = chromium.new_context(viewport={"width": 1024, "height": 800}, locale=lang)
    page = open_page(name, context=context)
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page


@pytest.mark.parametrize(
    "lang, heading, end_others",
    [
        ("en", "Your sessions", "End all other sessions"),
        ("es", "Tus sesiones", "Cerrar todas las demás sesiones"),
    ],
)
def test_the_sessions_page_lists_and_ends_sessions(
    chromium, open_page, base_url, alice, lang, heading, end_others
):
    laptop = sign_in(chromium, open_page, base_url, alice, lang, f"laptop-{lang}")
    phone = sign_in(chromium, open_page, base_url, alice, lang, f"phone-{lang}")
    laptop.goto(base_url + "/account/sessions/")
    assert laptop.locator("h1").inner_text() == heading
    assert laptop.locator("tbody tr").count() == 2
    assert blocking_violations(laptop) == [], f"axe on the sessions page, {lang}"
    laptop.get_by_role("button", name=end_others).click()
    laptop.wait_for_url(base_url + "/account/sessions/")
    assert laptop.locator("tbody tr").count() == 1
    assert blocking_violations(laptop) == [], f"axe after ending a session, {lang}"
    phone.goto(base_url + "/")
    assert "/accounts/login/" in phone.url

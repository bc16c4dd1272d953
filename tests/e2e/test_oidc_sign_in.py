"""Signing in through a real OpenID Connect provider (tests/idp/, its own process) in a
real Chromium against a real worker: the button, the provider's page, and back on the
dashboard with the role the provider's groups give."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth import get_user_model

from conftest import ROOT
from tests.idp.process import IDP_PASSWORD

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-artifacts" / "oidc"


@pytest.fixture
def site(web_workers, identity_provider):
    identity_provider.add_user("dana", groups=["ops"])
    env = identity_provider.livedash_env(OIDC_ROLE_MAP="ops=Operator", LOCAL_LOGIN="off")
    (url,) = web_workers(1, env=env)
    identity_provider.start(url)
    return url


def test_it_signs_in_through_the_provider_and_lands_on_the_dashboard(open_page, site):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page("oidc")
    page.goto(site + "/accounts/login/")
    assert page.locator("#id_password").count() == 0, "LOCAL_LOGIN=off shows no password form"
    blocking = [
        v["id"] for v in Axe().run(page).response["violations"] if v.get("impact") in ("serious", "critical")
    ]
    assert blocking == []
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.get_by_role("button", name="Sign in with Test IdP").click()
    page.wait_for_selector("#idp-username")
    page.fill("#idp-username", "dana")
    page.fill("#idp-password", IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to the identity provider").click()
    page.wait_for_url(site + "/")
    page.wait_for_selector("canvas, .chart, main")
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    user = get_user_model().objects.get(username="dana")
    assert list(user.groups.values_list("name", flat=True)) == ["Operator"]

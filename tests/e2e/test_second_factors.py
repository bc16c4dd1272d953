"""Second factors in a real Chromium against a real worker: an authenticator app (TOTP)
enrolled from the account page and asked at the next sign-in, and a passkey enrolled
through Chromium's virtual authenticator (the CDP WebAuthn domain) that then signs in,
as the second step after the password and alone from the login page. Every page under
the strict Content-Security-Policy, axe-clean, in English and Spanish."""

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth import get_user_model

from conftest import PASSWORD, ROOT

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT / "test-artifacts" / "second-factors"
BLOCKING = ("serious", "critical")
AXE = Axe()


@pytest.fixture
def site(web_workers):
    """A worker reached as `localhost`: a passkey's relying party is the page's host name,
    and browsers take no IP address for one. The workers run with DEBUG, which allows
    passkeys over plain http (MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN)."""
    (url,) = web_workers(1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return url.replace("127.0.0.1", "localhost")


def blocking_violations(page):
    found = [v for v in AXE.run(page).response["violations"] if v.get("impact") in BLOCKING]
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def watch_csp(page):
    """Collects what the Content-Security-Policy blocked on this page."""
    page.csp_violations = []
    page.on(
        "console",
        lambda msg: "Content Security Policy" in msg.text and page.csp_violations.append(msg.text),
    )
    return page


def new_page(chromium, open_page, name, lang="en"):
    context = chromium.new_context(viewport={"width": 1024, "height": 900}, locale=lang)
    return watch_csp(open_page(name, context=context))


def password_step(page, site, user):
    page.goto(site + "/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("form[action='/accounts/login/'] button[type=submit]")


def sign_out(page, site):
    page.goto(site + "/accounts/2fa/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(site + "/accounts/login/")


def totp_code(secret, not_this=None):
    """The app's current code; a code once used is refused again, so when `not_this` is
    given, the next one (waiting for the app to show it)."""
    while True:
        code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
        if code != not_this:
            return code
        time.sleep(0.5)


def virtual_authenticator(page):
    """Chromium's virtual authenticator for this page: a platform passkey store with
    user verification (a PIN or a fingerprint that always succeeds)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    found = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, found["authenticatorId"]


def test_an_authenticator_app_is_enrolled_and_asked_at_the_next_sign_in(chromium, open_page, site, alice):
    page = new_page(chromium, open_page, "totp")
    password_step(page, site, alice)
    page.wait_for_url(site + "/")
    page.goto(site + "/account/sessions/")
    page.get_by_role("link", name="Two-factor sign-in").click()
    page.wait_for_url(site + "/accounts/2fa/")
    assert blocking_violations(page) == [], "axe on the second-factor page"
    page.screenshot(path=str(SCREENSHOTS / "index.png"), full_page=True)
    page.locator("a[href='/accounts/2fa/totp/activate/']").click()
    page.wait_for_url(site + "/accounts/2fa/totp/activate/")
    assert page.locator(".totp-qr svg").count() == 1
    assert blocking_violations(page) == [], "axe on the authenticator app page"
    page.screenshot(path=str(SCREENSHOTS / "totp-activate.png"), full_page=True)
    secret = page.input_value("#authenticator_secret")
    enrolled_with = totp_code(secret)
    page.fill("#id_code", enrolled_with)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(site + "/accounts/2fa/recovery-codes/")
    assert Authenticator.objects.filter(user=alice, type="totp").exists()

    sign_out(page, site)
    password_step(page, site, alice)
    page.wait_for_url(site + "/accounts/2fa/authenticate/")
    assert blocking_violations(page) == [], "axe on the sign-in's second step"
    page.screenshot(path=str(SCREENSHOTS / "totp-authenticate.png"), full_page=True)
    page.fill("#id_code", "000000")
    page.get_by_role("button", name="Sign In").click()
    assert page.locator(".errorlist").count() == 1, "a wrong code is said so"
    page.fill("#id_code", totp_code(secret, not_this=enrolled_with))
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(site + "/")
    page.wait_for_selector("main")
    assert page.csp_violations == []


def test_a_passkey_is_enrolled_then_signs_in(chromium, open_page, site, alice):
    page = new_page(chromium, open_page, "passkey")
    cdp, authenticator_id = virtual_authenticator(page)
    password_step(page, site, alice)
    page.wait_for_url(site + "/")
    page.goto(site + "/account/sessions/")
    page.get_by_role("link", name="Two-factor sign-in").click()
    page.locator("a[href='/accounts/2fa/webauthn/add/']").click()
    page.wait_for_url(site + "/accounts/2fa/webauthn/add/")
    assert blocking_violations(page) == [], "axe on the add-a-passkey page"
    page.fill("#id_name", "Laptop")
    page.check("#id_passwordless")
    page.screenshot(path=str(SCREENSHOTS / "passkey-add.png"), full_page=True)
    page.click("#mfa_webauthn_add")
    page.wait_for_url(site + "/accounts/2fa/recovery-codes/")
    (passkey,) = Authenticator.objects.filter(user=alice, type="webauthn")
    assert passkey.wrap().name == "Laptop" and passkey.wrap().is_passwordless
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]
    page.goto(site + "/accounts/2fa/webauthn/")
    assert "Laptop" in page.locator("main").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "passkey-list.png"), full_page=True)

    # The password, then the passkey as the second step.
    sign_out(page, site)
    password_step(page, site, alice)
    page.wait_for_url(site + "/accounts/2fa/authenticate/")
    page.screenshot(path=str(SCREENSHOTS / "passkey-authenticate.png"), full_page=True)
    page.get_by_role("button", name="Use a security key").click()
    page.wait_for_url(site + "/")

    # The passkey alone, from the login page.
    sign_out(page, site)
    assert blocking_violations(page) == [], "axe on the login page with its passkey button"
    page.screenshot(path=str(SCREENSHOTS / "login-passkey.png"), full_page=True)
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(site + "/")
    sign_count = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"][0]
    assert sign_count["signCount"] >= 3, "enrolled once, used twice"
    assert page.csp_violations == []
    user = get_user_model().objects.get(pk=alice.pk)
    assert user.last_login is not None


def test_a_passkey_the_browser_does_not_give_is_said_so(chromium, open_page, site, alice):
    """No passkey for this site in the browser: the login page says it did not work."""
    page = new_page(chromium, open_page, "no-passkey")
    cdp, authenticator_id = virtual_authenticator(page)
    page.goto(site + "/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.locator(".passkey-error").wait_for(state="visible")
    assert page.url == site + "/accounts/login/"
    page.screenshot(path=str(SCREENSHOTS / "login-no-passkey.png"), full_page=True)


@pytest.mark.parametrize("lang, add_heading", [("es", "Añadir una clave de seguridad")])
def test_the_second_factor_pages_speak_spanish(chromium, open_page, site, alice, lang, add_heading):
    page = new_page(chromium, open_page, f"second-factors-{lang}", lang=lang)
    password_step(page, site, alice)
    page.wait_for_url(site + "/")
    page.goto(site + "/accounts/2fa/webauthn/add/")
    assert page.locator("h1").inner_text() == add_heading
    assert page.locator("label[for=id_name]").inner_text() == "Nombre:"
    assert blocking_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / f"passkey-add-{lang}.png"), full_page=True)
    page.goto(site + "/accounts/2fa/totp/activate/")
    assert "Activar" in page.locator("main").inner_text()
    assert blocking_violations(page) == []


def age_the_browsers_sign_in(page, seconds):
    """Make the proofs of identity this browser's session holds `seconds` older (the
    session lives in the shared database and cache, where the worker reads it)."""
    from importlib import import_module

    from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
    from django.conf import settings

    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {**entry, "at": entry["at"] - seconds} for entry in session[AUTHENTICATION_METHODS_SESSION_KEY]
    ]
    session.save()


def test_an_old_session_enters_its_password_again_before_adding_a_passkey(chromium, open_page, site, alice):
    page = new_page(chromium, open_page, "reauthenticate")
    password_step(page, site, alice)
    page.wait_for_url(site + "/")
    age_the_browsers_sign_in(page, 301)
    page.goto(site + "/accounts/2fa/webauthn/add/")
    page.wait_for_url(lambda url: url.startswith(site + "/accounts/reauthenticate/?next="))
    assert blocking_violations(page) == [], "axe on the password-again page"
    page.screenshot(path=str(SCREENSHOTS / "reauthenticate.png"), full_page=True)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(site + "/accounts/2fa/webauthn/add/")
    assert page.csp_violations == []

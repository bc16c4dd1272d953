"""Every step of a sign-in under django-axes' lockout, and a proof of identity asked
again before a second factor is added or removed."""

import time

import pytest
from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth import SESSION_KEY
from django.test import Client

from accounts.tests.test_mfa import current_code, enrol
from conftest import PASSWORD

LIMIT = 4


@pytest.fixture
def lockout(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def alice_with_totp(alice):
    secret = generate_totp_secret()
    TOTP.activate(alice, secret)
    RecoveryCodes.activate(alice)
    return alice, secret


def password_step(client, user, password=PASSWORD):
    return client.post("/accounts/login/", {"username": user.username, "password": password})


def is_locked_out(response):
    return response.status_code in (403, 429) and "locked" in response.content.decode().lower()


def test_wrong_codes_lock_out_like_wrong_passwords(lockout, alice_with_totp):
    alice, secret = alice_with_totp
    client = Client(REMOTE_ADDR="203.0.113.5")
    assert password_step(client, alice)["Location"] == "/accounts/2fa/authenticate/"
    for _ in range(LIMIT - 1):
        response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
        assert response.status_code == 200 and not is_locked_out(response)
    assert is_locked_out(client.post("/accounts/2fa/authenticate/", {"code": "000000"}))
    # Locked out: the right code, a recovery code and the password are all refused now.
    assert is_locked_out(client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)}))
    unused = RecoveryCodes(Authenticator.objects.get(user=alice, type="recovery_codes")).get_unused_codes()
    assert is_locked_out(client.post("/accounts/2fa/authenticate/", {"code": unused[0]}))
    passkey = client.post("/accounts/2fa/authenticate/", {"credential": '{"id": "x"}'})
    assert is_locked_out(passkey), "nor a passkey"
    assert SESSION_KEY not in client.session
    assert is_locked_out(password_step(Client(REMOTE_ADDR="203.0.113.5"), alice))
    # The lockout is for that username from that address: alice elsewhere still signs in.
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert password_step(elsewhere, alice)["Location"] == "/accounts/2fa/authenticate/"


def test_wrong_passwords_and_wrong_codes_fill_one_counter(lockout, alice_with_totp):
    alice, _ = alice_with_totp
    client = Client(REMOTE_ADDR="203.0.113.6")
    for _ in range(LIMIT // 2):
        assert password_step(client, alice, "wrong").status_code == 200
    assert password_step(client, alice)["Location"] == "/accounts/2fa/authenticate/"
    for _ in range(LIMIT // 2 - 1):
        assert not is_locked_out(client.post("/accounts/2fa/authenticate/", {"code": "12345678"}))
    assert is_locked_out(client.post("/accounts/2fa/authenticate/", {"code": "12345678"}))


def test_a_right_code_before_the_limit_signs_in_and_clears_the_count(lockout, alice_with_totp):
    alice, secret = alice_with_totp
    client = Client(REMOTE_ADDR="203.0.113.7")
    password_step(client, alice)
    for _ in range(LIMIT - 1):
        client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)}).status_code == 302
    assert client.session[SESSION_KEY] == str(alice.pk)
    again = Client(REMOTE_ADDR="203.0.113.7")
    password_step(again, alice)
    assert not is_locked_out(again.post("/accounts/2fa/authenticate/", {"code": "000000"}))


# --- re-authentication ---------------------------------------------------------------


def age_the_sign_in(client, seconds):
    """Make every proof of identity this session holds `seconds` older."""
    session = client.session
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {**entry, "at": entry["at"] - seconds} for entry in session[AUTHENTICATION_METHODS_SESSION_KEY]
    ]
    session.save()


def signed_in(user):
    client = Client()
    assert password_step(client, user).status_code == 302
    return client


@pytest.mark.parametrize("path", ["/accounts/2fa/totp/activate/", "/accounts/2fa/webauthn/add/"])
def test_an_old_session_enters_the_password_again_before_enrolling(alice, path):
    client = signed_in(alice)
    assert client.get(path).status_code == 200, "right after signing in: no password again"
    age_the_sign_in(client, 301)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/"), response["Location"]
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'name="password"' in page.content.decode()
    wrong = client.post(response["Location"], {"password": "wrong"})
    assert wrong.status_code == 200
    assert client.get(path).status_code == 302, "a wrong password proves nothing"
    right = client.post(response["Location"], {"password": PASSWORD})
    assert right.status_code == 302 and right["Location"] == path
    assert client.get(path).status_code == 200


def test_an_old_session_proves_itself_again_before_removing_a_factor(alice):
    client = signed_in(alice)
    enrol(client)
    age_the_sign_in(client, 301)
    response = client.get("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert client.post("/accounts/2fa/totp/deactivate/").status_code == 302
    assert Authenticator.objects.filter(user=alice, type="totp").exists(), "not removed without the password"
    # The password again: the removal it interrupted goes through (allauth replays it).
    client.post(response["Location"], {"password": PASSWORD})
    assert not Authenticator.objects.filter(user=alice, type="totp").exists()


def test_the_reauthentication_window_is_the_settings(alice, settings):
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 60
    client = signed_in(alice)
    age_the_sign_in(client, 30)
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    age_the_sign_in(client, 31)
    assert client.get("/accounts/2fa/totp/activate/").status_code == 302
    assert time.time()  # the clock itself is not mocked: the session's records are aged


def test_changing_a_factor_under_mfa_required_makes_every_worker_ask_again(
    settings, alice, monkeypatch, django_capture_on_commit_callbacks
):
    """Under MFA_REQUIRED a second factor decides whether streams and sockets are allowed:
    adding one, and removing it, revoke what every worker remembers and holds open."""
    from dashboard import revocation

    settings.MFA_REQUIRED = "all"
    revoked = []
    monkeypatch.setattr(revocation, "revoke", lambda user_ids: revoked.append(sorted(user_ids)))
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True):
        enrol(client)
    assert revoked == [[alice.pk]]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/accounts/2fa/totp/deactivate/").status_code == 302
    assert not Authenticator.objects.filter(user=alice, type="totp").exists()
    assert revoked == [[alice.pk], [alice.pk]]
    assert client.get("/")["Location"] == "/accounts/2fa/", "and the pages lead to enrolment again"

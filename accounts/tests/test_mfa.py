"""Second factors through allauth.mfa: an authenticator app (TOTP) asked for at sign-in,
its enrolment, MFA_REQUIRED leading a user to enrol first, and the audit of each."""

import re

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.contrib.auth import SESSION_KEY
from django.test import Client

from audit.models import AuditEntry
from conftest import PASSWORD


def current_code(secret):
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


def sign_in_with_password(client, user):
    return client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})


@pytest.fixture
def alice_with_totp(alice):
    secret = generate_totp_secret()
    TOTP.activate(alice, secret)
    return alice, secret


def test_it_asks_a_user_with_an_authenticator_app_for_a_code(alice_with_totp):
    alice, secret = alice_with_totp
    client = Client()
    response = sign_in_with_password(client, alice)
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert SESSION_KEY not in client.session, "not signed in before the second factor"
    assert client.get("/").status_code == 302
    assert client.get("/accounts/2fa/authenticate/").status_code == 200
    response = client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session[SESSION_KEY] == str(alice.pk)
    assert client.get("/").status_code == 200
    actions = set(AuditEntry.objects.filter(actor="alice").values_list("action", flat=True))
    assert {"mfa_used", "sign_in"} <= actions


def test_a_wrong_code_signs_nobody_in_and_is_audited(alice_with_totp):
    alice, _ = alice_with_totp
    client = Client()
    sign_in_with_password(client, alice)
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert response.status_code == 200
    assert SESSION_KEY not in client.session
    assert AuditEntry.objects.filter(action="sign_in_failed", target__startswith="alice").exists()


def enrol(client):
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html, "the QR code is drawn inline (the CSP allows no data: images)"
    secret = re.search(
        r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"|value="([A-Z2-7]+)"[^>]*id="authenticator_secret"',
        html,
    )
    secret = secret.group(1) or secret.group(2)
    response = client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    assert response.status_code == 302, response.content[:500]
    return secret


@pytest.mark.parametrize("policy, user_fixture", [("all", "alice"), ("staff", "staff")])
def test_mfa_required_leads_the_user_to_enrol_before_anything_else(
    settings, request, django_capture_on_commit_callbacks, policy, user_fixture
):
    settings.MFA_REQUIRED = policy
    user = request.getfixturevalue(user_fixture)
    client = Client()
    assert sign_in_with_password(client, user).status_code == 302
    for path in ("/", "/account/sessions/", "/admin/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == "/accounts/2fa/", path
    with django_capture_on_commit_callbacks(execute=True):
        enrol(client)
    assert client.get("/").status_code == 200
    assert AuditEntry.objects.filter(action="mfa_added", target__startswith=user.username).exists()


def test_mfa_required_for_staff_leaves_others_be(settings, alice):
    settings.MFA_REQUIRED = "staff"
    client = Client()
    sign_in_with_password(client, alice)
    assert client.get("/").status_code == 200


def test_the_enrolled_user_is_asked_for_the_code_at_the_next_sign_in(alice):
    client = Client()
    sign_in_with_password(client, alice)
    secret = enrol(client)
    again = Client()
    assert sign_in_with_password(again, alice)["Location"] == "/accounts/2fa/authenticate/"
    assert again.post("/accounts/2fa/authenticate/", {"code": current_code(secret)}).status_code == 302
    assert again.session[SESSION_KEY] == str(alice.pk)


def test_the_admin_login_asks_for_the_second_factor_too(alice_with_totp):
    alice, secret = alice_with_totp
    alice.is_staff = True
    alice.save()
    client = Client()
    assert client.get("/admin/login/?next=/admin/")["Location"].startswith("/accounts/login/")
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD, "next": "/admin/"})
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert SESSION_KEY not in client.session
    response = client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert response["Location"] == "/admin/"

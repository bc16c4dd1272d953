"""OpenID Connect sign-in against a real provider in its own process (tests/idp/):
the flow, roles from the groups claim on every sign-in, and each way a sign-in must
be refused (a forged state, a wrong nonce, an expired token, another audience)."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from accounts.roles import ADMIN, OPERATOR, VIEWER
from accounts.tests.test_it_mfa_steps import age_the_sign_in
from audit.models import AuditEntry
from conftest import PASSWORD
from tests.idp.process import CALLBACK_PATH, IDP_PASSWORD

SITE = "http://testserver"
LOGIN = "/accounts/oidc/oidc/login/"


@pytest.fixture
def idp(identity_provider):
    identity_provider.add_user("dana", groups=["ops"])
    return identity_provider.start(SITE)


@pytest.fixture
def oidc_settings(settings, idp):
    env = idp.livedash_env()
    settings.OIDC_ISSUER = env["OIDC_ISSUER"]
    settings.OIDC_PROVIDER_NAME = env["OIDC_PROVIDER_NAME"]
    settings.OIDC_ROLE_MAP = {"ops": OPERATOR, "viewers": VIEWER, "admins": ADMIN}
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            **settings.SOCIALACCOUNT_PROVIDERS["openid_connect"],
            "APPS": [
                {
                    "provider_id": "oidc",
                    "name": env["OIDC_PROVIDER_NAME"],
                    "client_id": env["OIDC_CLIENT_ID"],
                    "secret": env["OIDC_CLIENT_SECRET"],
                    "settings": {"server_url": env["OIDC_ISSUER"], "oauth_pkce_enabled": True},
                }
            ],
        }
    }
    return settings


def authorize_at_the_provider(authorize_url, username):
    """What the browser does at the provider: sign in there, come back with a code."""
    browser = requests.Session()
    response = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    login_url = requests.compat.urljoin(authorize_url, response.headers["Location"])
    page = browser.get(login_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    next_url = parse_qs(urlsplit(login_url).query)["next"][0]
    response = browser.post(
        login_url,
        {"csrfmiddlewaretoken": token, "username": username, "password": IDP_PASSWORD, "next": next_url},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, "the provider refused its own user"
    response = browser.get(
        requests.compat.urljoin(login_url, response.headers["Location"]), allow_redirects=False, timeout=10
    )
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(SITE + CALLBACK_PATH), callback
    return callback[len(SITE) :]


def start_sign_in(client):
    response = client.post(LOGIN, {"next": "/"})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def sign_in(client, username):
    """The whole flow; the callback's response."""
    return client.get(authorize_at_the_provider(start_sign_in(client), username))


def signed_in_user(client):
    user_id = client.session.get(SESSION_KEY)
    return get_user_model().objects.get(pk=user_id) if user_id else None


def roles_of(user):
    return sorted(user.groups.values_list("name", flat=True))


def test_it_signs_in_a_provider_user_with_the_role_their_groups_give(oidc_settings, db):
    client = Client()
    response = sign_in(client, "dana")
    assert response.status_code == 302 and response["Location"] == "/"
    user = signed_in_user(client)
    assert user is not None and user.username == "dana"
    assert roles_of(user) == [OPERATOR]
    assert client.get("/").status_code == 200
    actions = list(AuditEntry.objects.filter(actor="dana").values_list("action", flat=True))
    assert "oidc_first_sign_in" in actions and "sign_in" in actions


def test_it_sends_a_nonce_and_pkce(oidc_settings, db):
    query = parse_qs(urlsplit(start_sign_in(Client())).query)
    assert len(query["nonce"][0]) >= 32
    assert query["code_challenge_method"] == ["S256"]


def test_it_follows_the_groups_on_every_sign_in(oidc_settings, idp, db):
    sign_in(Client(), "dana")
    idp.set_groups("dana", ["viewers"])
    client = Client()
    sign_in(client, "dana")
    user = signed_in_user(client)
    assert roles_of(user) == [VIEWER], "a role the provider took away stays taken away"
    assert get_user_model().objects.filter(username__startswith="dana").count() == 1
    idp.set_groups("dana", ["admins", "ops"])
    sign_in(client := Client(), "dana")
    user = signed_in_user(client)
    assert roles_of(user) == [ADMIN, OPERATOR] and user.is_staff


def test_it_gives_the_default_role_when_no_group_maps(oidc_settings, idp, db):
    idp.add_user("erin", groups=["unrelated"])
    client = Client()
    sign_in(client, "erin")
    assert roles_of(signed_in_user(client)) == [VIEWER]


def refused(client, response):
    assert response.status_code == 401, response.get("Location")
    assert b"did not work" in response.content
    assert signed_in_user(client) is None
    assert AuditEntry.objects.filter(action="sign_in_failed").exists()
    assert not get_user_model().objects.filter(username="dana").exists()


def test_it_refuses_a_forged_state(oidc_settings, db):
    client = Client()
    callback = authorize_at_the_provider(start_sign_in(client), "dana")
    forged = re.sub(r"state=[^&]+", "state=forged-by-someone", callback)
    refused(client, client.get(forged))


def test_it_refuses_a_callback_of_another_browser(oidc_settings, db):
    # A code and state meant for one browser's sign-in, taken to another's session.
    callback = authorize_at_the_provider(start_sign_in(Client()), "dana")
    other = Client()
    refused(other, other.get(callback))


@pytest.mark.parametrize(
    "fault",
    [{"nonce": "not-the-one-sent"}, {"expired": True}, {"aud": "another-client"}],
    ids=["wrong-nonce", "expired", "another-audience"],
)
def test_it_refuses_a_wrong_id_token(oidc_settings, idp, db, fault):
    idp.set_faults(**fault)
    client = Client()
    refused(client, sign_in(client, "dana"))


def test_it_never_matches_a_local_account_by_e_mail(oidc_settings, idp, alice):
    # The provider says "alice" with alice's address, unverified: a different person here.
    idp.add_user("alice", email=alice.email, email_verified=False)
    client = Client()
    response = sign_in(client, "alice")
    assert response.status_code == 302
    user = signed_in_user(client)
    assert user is not None and user.pk != alice.pk
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    assert not alice.socialaccount_set.exists()


def test_the_login_page_offers_the_provider(oidc_settings, db):
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with Test IdP" in page
    assert 'name="password"' in page


def test_the_login_page_without_a_provider_has_no_button(db):
    page = Client().get("/accounts/login/").content.decode()
    assert 'id="sign-in-oidc"' not in page
    assert 'name="password"' in page


def test_local_login_off_refuses_a_password(oidc_settings, alice):
    oidc_settings.LOCAL_LOGIN = False
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert 'name="password"' not in page and "Sign in with Test IdP" in page
    for path in ("/accounts/login/", "/admin/login/"):
        response = client.post(path, {"username": "alice", "password": PASSWORD})
        assert response.status_code == 403, path
        assert signed_in_user(client) is None
    assert client.get("/admin/login/").status_code == 302


def test_a_providers_user_signs_in_again_there_before_enrolling(oidc_settings, db):
    """A provider's user has no password to enter again: they sign in through the
    provider afresh and come back to the enrolment they asked for."""
    client = Client()
    assert sign_in(client, "dana")["Location"] == "/"
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    age_the_sign_in(client, 301)
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/provider/"), response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Sign in again with Test IdP" in page and 'value="/accounts/2fa/totp/activate/"' in page
    started = client.post(LOGIN, {"next": "/accounts/2fa/totp/activate/"})
    back = client.get(authorize_at_the_provider(started["Location"], "dana"))
    assert back.status_code == 302 and back["Location"] == "/accounts/2fa/totp/activate/"
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200

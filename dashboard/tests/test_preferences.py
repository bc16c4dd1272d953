"""Theme and language choices: stored per user (theme) or in the language cookie, and
applied on the root element of every page."""

import pytest

from conftest import PASSWORD
from dashboard.models import UserPreference


def root_element(response):
    return response.content.decode().split("<head>")[0]


def test_the_theme_follows_the_system_until_the_user_picks_one(client, alice):
    client.force_login(alice)
    assert 'data-theme="system"' in root_element(client.get("/"))
    response = client.post("/preferences/theme/", {"theme": "light", "next": "/"})
    assert response.status_code == 302
    assert response.url == "/"
    assert UserPreference.objects.get(user=alice).theme == "light"
    assert 'data-theme="light"' in root_element(client.get("/"))


def test_the_theme_is_remembered_per_user_not_per_browser(client, alice, bob):
    UserPreference.objects.create(user=alice, theme="dark")
    client.force_login(alice)
    assert 'data-theme="dark"' in root_element(client.get("/"))
    client.force_login(bob)
    assert 'data-theme="system"' in root_element(client.get("/"))


def test_the_pages_script_saves_the_theme_with_a_json_answer(client, alice):
    client.force_login(alice)
    response = client.post("/preferences/theme/", {"theme": "dark"}, headers={"accept": "application/json"})
    assert response.json() == {"theme": "dark"}


@pytest.mark.parametrize("theme", ["", "purple", "x" * 100])
def test_an_unknown_theme_is_refused_and_changes_nothing(client, alice, theme):
    client.force_login(alice)
    assert client.post("/preferences/theme/", {"theme": theme}).status_code == 400
    assert not UserPreference.objects.filter(user=alice).exists()


def test_the_theme_needs_a_login_and_a_post(client, alice):
    assert client.post("/preferences/theme/", {"theme": "dark"}).status_code == 302
    client.force_login(alice)
    assert client.get("/preferences/theme/").status_code == 405


def test_it_goes_back_only_to_this_site(client, alice):
    client.force_login(alice)
    response = client.post("/preferences/theme/", {"theme": "dark", "next": "https://evil.example.com/"})
    assert response.url == "/"


def test_accept_language_decides_until_the_user_picks(client, alice):
    client.force_login(alice)
    spanish = client.get("/", headers={"accept-language": "es-ES,es;q=0.9"})
    assert '<html lang="es"' in spanish.content.decode()
    assert "Cerrar sesión" in spanish.content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    english = client.get("/", headers={"accept-language": "es-ES,es;q=0.9"})
    assert '<html lang="en"' in english.content.decode()
    assert "Log out" in english.content.decode()


def test_the_script_catalogue_is_served_in_the_pages_language(client):
    client.cookies["django_language"] = "es"
    response = client.get("/i18n/js/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "Notificaciones" in response.content.decode()


def test_logging_out_says_so_on_the_login_page(client, alice):
    client.force_login(alice)
    response = client.post("/accounts/logout/", follow=True)
    assert response.request["PATH_INFO"] == "/accounts/login/"
    assert "You have been signed out." in response.content.decode()
    # Said once, not on every later visit.
    assert "signed out" not in client.get("/accounts/login/").content.decode()


def test_after_a_wrong_password_the_cursor_goes_to_the_password(client, alice):
    first = client.get("/accounts/login/").content.decode()
    assert 'id="id_username" autocomplete="username" autofocus' in first
    wrong = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD + "x"}
    ).content.decode()
    password = wrong.split('id="id_password"')[1].split(">")[0]
    assert "autofocus" in password
    assert "autofocus" not in wrong.split('id="id_username"')[1].split(">")[0]

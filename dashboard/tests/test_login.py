from conftest import PASSWORD


def test_it_shows_the_login_form(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_it_logs_in_and_redirects_to_the_dashboard(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == "/"


def test_it_shows_a_message_on_bad_password(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content
    assert "_auth_user_id" not in client.session


def test_it_honours_next(client, alice):
    response = client.post(
        "/accounts/login/?next=/admin/", {"username": "alice", "password": PASSWORD, "next": "/admin/"}
    )
    assert response.url == "/admin/"


def test_it_refuses_an_open_redirect(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example.com/"}
    )
    assert response.status_code == 302
    assert response.url == "/"


def test_logout_needs_post(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session

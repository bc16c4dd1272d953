def test_it_rejects_anonymous(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=/")


def test_it_shows_who_is_logged_in_and_a_logout_button(client, alice):
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200
    assert b'id="current-user">alice<' in response.content
    assert b'action="/accounts/logout/"' in response.content


def test_it_hides_controls_from_users_without_change_permission(client, alice):
    client.force_login(alice)
    response = client.get("/")
    assert b'id="interval-select"' not in response.content


def test_it_shows_controls_to_staff(client, staff):
    client.force_login(staff)
    assert b'id="interval-select"' in client.get("/").content


def test_it_loads_no_asset_from_another_host(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html


def page_config(client, user):
    client.force_login(user)
    response = client.get("/")
    return response.context["page_config"]


def test_it_names_the_stream_channels_the_user_may_read(client, alice, charlie):
    stream = page_config(client, alice)["stream"]
    assert stream["url"] == "/events/"
    assert stream["channels"] == ["metrics"]
    assert stream["events"] == ["frame", "metric", "metric-config", "dashboard-changed", "stream-reset"]
    client.logout()
    assert page_config(client, charlie)["stream"]["channels"] == []

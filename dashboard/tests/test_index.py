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


def test_it_shows_a_banner_while_a_maintenance_window_covers_a_chart(client, alice):
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import MaintenanceWindow
    from dashboard.models import Metric

    Metric.objects.create(key="disk", label="Disk")
    client.force_login(alice)
    assert b'id="maintenance"' not in client.get("/").content
    now = timezone.now()
    # A window on now for a metric the page shows, one for a metric it does not show,
    # one over already and one switched off: only the first is told.
    MaintenanceWindow.objects.create(
        name="disk swap", match='disk{host="db1"}', starts_at=now - timedelta(minutes=5), duration_minutes=30
    )
    MaintenanceWindow.objects.create(name="elsewhere", match="gpu", starts_at=now, duration_minutes=30)
    MaintenanceWindow.objects.create(name="over", starts_at=now - timedelta(hours=2), duration_minutes=30)
    MaintenanceWindow.objects.create(name="off", starts_at=now, duration_minutes=30, enabled=False)
    html = client.get("/").content.decode()
    assert 'id="maintenance"' in html
    until = (now + timedelta(minutes=25)).replace(second=0, microsecond=0)
    assert "Maintenance window “disk swap” until <time" in html
    assert f"{until:%H:%M} UTC</time>: its alerts are recorded, not sent." in html
    for other in ("elsewhere", "over", "off"):
        assert other not in html
    # In the page's language.
    client.post("/i18n/setlang/", {"language": "es", "next": "/"})
    spanish = client.get("/", headers={"Accept-Language": "es"}).content.decode()
    assert "Ventana de mantenimiento «disk swap» hasta las <time" in spanish


def test_a_window_for_every_series_is_told_and_not_to_who_sees_no_charts(client, alice, charlie):
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import MaintenanceWindow

    MaintenanceWindow.objects.create(
        name="datacenter move",
        starts_at=timezone.now() - timedelta(minutes=1),
        duration_minutes=60,
        cron="* * * * *",
    )
    client.force_login(alice)
    assert "datacenter move" in client.get("/").content.decode()
    client.force_login(charlie)  # may not view the metrics
    assert "datacenter move" not in client.get("/").content.decode()

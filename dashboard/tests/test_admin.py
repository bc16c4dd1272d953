import pytest

from dashboard.models import Metric

CHANGELIST = "/admin/dashboard/metric/"


@pytest.fixture
def cpu(db):
    return Metric.objects.create(
        key="cpu", label="CPU", unit="%", source=Metric.Source.SYSTEM, warning_threshold=70, display_order=10
    )


@pytest.fixture
def orders(db):
    # What dashboard.live.publish_metric registers on a first publish.
    return Metric.objects.create(key="orders", source=Metric.Source.CUSTOM)


def test_it_lists_metrics_for_the_superuser(client, admin_user, cpu, orders):
    client.force_login(admin_user)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cpu" in html
    assert "orders" in html


def test_it_keeps_the_list_from_users_without_staff_access(client, alice, cpu):
    client.force_login(alice)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response.url


def test_it_filters_by_source(client, admin_user, cpu, orders):
    client.force_login(admin_user)
    response = client.get(CHANGELIST, {"source__exact": "custom"})
    keys = [row.key for row in response.context["cl"].result_list]
    assert keys == ["orders"]


def test_it_searches_by_label(client, admin_user, cpu, orders):
    client.force_login(admin_user)
    response = client.get(CHANGELIST, {"q": "CPU"})
    keys = [row.key for row in response.context["cl"].result_list]
    assert keys == ["cpu"]


def test_it_shows_the_change_page(client, admin_user, cpu):
    client.force_login(admin_user)
    response = client.get(f"{CHANGELIST}{cpu.pk}/change/")
    assert response.status_code == 200
    assert b"Thresholds" in response.content


def test_it_lets_the_admin_edit_a_custom_metric(client, admin_user, orders):
    client.force_login(admin_user)
    response = client.post(
        f"{CHANGELIST}{orders.pk}/change/",
        {
            "label": "Orders",
            "unit": "/min",
            "enabled": "on",
            "display_order": "5",
            "warning_threshold": "100",
            "critical_threshold": "200",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    orders.refresh_from_db()
    assert (orders.label, orders.unit, orders.warning_threshold, orders.critical_threshold) == (
        "Orders",
        "/min",
        100,
        200,
    )


def test_it_keeps_the_key_when_a_change_form_sends_one(client, admin_user, orders):
    client.force_login(admin_user)
    client.post(
        f"{CHANGELIST}{orders.pk}/change/",
        {"key": "renamed", "label": "Orders", "display_order": "5", "enabled": "on"},
    )
    orders.refresh_from_db()
    assert orders.key == "orders"


def test_it_refuses_a_warning_threshold_above_critical(client, admin_user, orders):
    client.force_login(admin_user)
    response = client.post(
        f"{CHANGELIST}{orders.pk}/change/",
        {"display_order": "5", "warning_threshold": "300", "critical_threshold": "200"},
    )
    assert response.status_code == 200
    assert "warning_threshold" in response.context["adminform"].form.errors
    orders.refresh_from_db()
    assert orders.warning_threshold is None


def test_it_edits_thresholds_from_the_list(client, admin_user, cpu):
    client.force_login(admin_user)
    response = client.post(
        CHANGELIST,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(cpu.pk),
            "form-0-label": "Processor",
            "form-0-unit": "%",
            "form-0-enabled": "on",
            "form-0-warning_threshold": "60",
            "form-0-critical_threshold": "85",
            "form-0-display_order": "1",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    cpu.refresh_from_db()
    assert (cpu.label, cpu.warning_threshold, cpu.critical_threshold) == ("Processor", 60, 85)

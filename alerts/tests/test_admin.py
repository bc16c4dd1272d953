"""The admin: staff manage alert rules, at their old addresses too."""

import pytest

from alerts.models import AlertRule
from dashboard.models import Metric


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_alert_rule_pages_load_and_a_rule_can_be_added(admin_client_):
    cpu = Metric.objects.create(key="cpu", label="CPU")
    assert admin_client_.get("/admin/alerts/alertrule/").status_code == 200
    assert admin_client_.get("/admin/alerts/alertrule/add/").status_code == 200
    response = admin_client_.post(
        "/admin/alerts/alertrule/add/",
        {
            "name": "",
            "metric": cpu.pk,
            "comparison": "above",
            "threshold": "90",
            "sustain_seconds": "30",
            "cooldown_seconds": "300",
            "repeat_minutes": "60",
            "level": "warning",
            "recipient_group": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()
    rule = AlertRule.objects.get()
    assert str(rule) == "CPU above 90"
    assert admin_client_.get(f"/admin/alerts/alertrule/{rule.pk}/change/").status_code == 200


def test_the_old_admin_addresses_lead_to_the_alerts_app(admin_client_):
    answer = admin_client_.get("/admin/notifications/alertrule/?enabled__exact=1")
    assert answer.status_code == 301
    assert answer["Location"] == "/admin/alerts/alertrule/?enabled__exact=1"
    assert admin_client_.get("/admin/notifications/alertevent/", follow=True).status_code == 200

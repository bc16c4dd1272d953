"""Maintenance windows through the API (a token with the alerts scope, or staff),
and as annotations: a band per occurrence in GET /api/v1/annotations."""

import json
import time
from datetime import UTC, datetime

import pytest
from django.test import Client

from alerts.models import MaintenanceWindow
from api.models import ApiToken
from audit.models import AuditEntry

# 2026-01-01 00:00 UTC, a Thursday.
T = 1_767_225_600


@pytest.fixture
def token(transactional_db, redis_url):
    return ApiToken.create("ops-ci", alerts=True)[1]


def call(method, path, raw=None, body=None, client=None):
    client = client or Client()
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    data = json.dumps(body) if body is not None else None
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(path, data=data, headers=headers, **kwargs)


NIGHTLY = {
    "name": "nightly backup",
    "match": 'disk{host="db1"}',
    "start": T,
    "duration": 3600,
    "cron": "30 1 * * *",
    "timezone": "Europe/Madrid",
}


def test_windows_are_created_listed_read_and_deleted(token):
    answer = call("post", "/api/v1/maintenance-windows", token, NIGHTLY)
    assert answer.status_code == 201, answer.content
    stored = answer.json()
    window_id = stored.pop("id")
    window = MaintenanceWindow.objects.get(pk=window_id)
    # `active` is tonight's occurrence when the test runs inside it: asked of the model's own clock.
    occurrence = window.occurrence_at(datetime.now(UTC))
    expected_active = None if occurrence is None else stored["active"]
    assert (occurrence is None) == (stored["active"] is None)
    assert stored == {**NIGHTLY, "start": float(T), "rrule": "", "enabled": True, "active": expected_active}
    assert (window.cron, window.duration_minutes, window.timezone) == ("30 1 * * *", 60, "Europe/Madrid")
    # Recorded in the audit log like the other alerting configuration.
    assert AuditEntry.objects.filter(action="maintenancewindow.created").exists()

    listed = call("get", "/api/v1/maintenance-windows", token).json()["windows"]
    assert [w["name"] for w in listed] == ["nightly backup"]
    assert call("get", f"/api/v1/maintenance-windows/{window_id}", token).json()["cron"] == "30 1 * * *"
    assert call("delete", f"/api/v1/maintenance-windows/{window_id}", token).status_code == 204
    assert not MaintenanceWindow.objects.exists()
    for missing in (window_id, "nope"):
        answer = call("get", f"/api/v1/maintenance-windows/{missing}", token)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_an_active_window_says_until_when(token):
    now = time.time()
    answer = call(
        "post",
        "/api/v1/maintenance-windows",
        token,
        {"name": "upgrade", "start": now - 60, "duration": 599},  # kept as ten minutes
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["duration"] == 600
    assert answer.json()["active"] == {"start": pytest.approx(now - 60), "end": pytest.approx(now + 540)}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cron": "61 1 * * *"}, "cron: not a cron expression"),
        ({"cron": "30 1 * *"}, "five fields"),
        ({"rrule": "FREQ=DAILY"}, "not both"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"match": '{a=~"("}'}, "match:"),
        ({"duration": 0}, "duration must be"),
        ({"start": "tonight"}, "start must be unix seconds"),
        ({"name": ""}, "name must be"),
        ({"colour": "red"}, "unknown keys: colour"),
    ],
)
def test_bad_windows_are_400_saying_why(token, change, problem):
    answer = call("post", "/api/v1/maintenance-windows", token, {**NIGHTLY, **change})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid" and problem in answer.json()["detail"]
    assert not MaintenanceWindow.objects.exists()


def test_who_may_manage_windows(token, alice, admin_user):
    assert call("get", "/api/v1/maintenance-windows").status_code == 401
    _, annotate_only = ApiToken.create("deploys", annotate=True)
    assert call("get", "/api/v1/maintenance-windows", annotate_only).status_code == 403
    session = Client()
    session.force_login(alice)
    assert call("get", "/api/v1/maintenance-windows", client=session).status_code == 403
    session.force_login(admin_user)
    assert call("post", "/api/v1/maintenance-windows", body=NIGHTLY, client=session).status_code == 201
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(admin_user)
    window_id = MaintenanceWindow.objects.get().pk
    assert call("delete", f"/api/v1/maintenance-windows/{window_id}", client=guarded).status_code == 403
    assert MaintenanceWindow.objects.exists()


def test_windows_appear_as_annotations_on_the_charts_they_cover(token, alice):
    call("post", "/api/v1/maintenance-windows", token, NIGHTLY)
    call(
        "post",
        "/api/v1/maintenance-windows",
        token,
        {"name": "deploys", "start": T, "duration": 1800, "rrule": "FREQ=DAILY;BYHOUR=12", "timezone": "UTC"},
    )
    MaintenanceWindow.objects.create(
        name="off", starts_at=datetime.fromtimestamp(T, UTC), duration_minutes=60, enabled=False
    )
    viewer = Client()
    viewer.force_login(alice)
    # Two days: 01:30 Madrid is 00:30 UTC in winter; the daily noon one twice.
    query = f"start={T}&end={T + 2 * 86400}"
    found = viewer.get(f"/api/v1/annotations?{query}").json()["annotations"]
    assert [(a["text"], a["time"] - T, a["end"] - a["time"]) for a in found] == [
        ("Maintenance: nightly backup", 1800, 3600),
        ("Maintenance: deploys", 12 * 3600, 1800),
        ("Maintenance: nightly backup", 86400 + 1800, 3600),
        ("Maintenance: deploys", 86400 + 12 * 3600, 1800),
    ]
    window_id = MaintenanceWindow.objects.get(name="nightly backup").pk
    assert found[0]["id"] == f"maintenance:{window_id}:{T + 1800}"
    assert found[0]["tags"] == ["maintenance"] and found[0]["match"] == 'disk{host="db1"}'
    # A chart of another metric gets the windows for every series, not the disk's.
    cpu = viewer.get(f"/api/v1/annotations?{query}&match=cpu").json()["annotations"]
    assert [a["text"] for a in cpu] == ["Maintenance: deploys"] * 2
    disk = viewer.get(f"/api/v1/annotations?{query}&match=disk").json()["annotations"]
    assert len(disk) == 4


def test_it_lets_a_user_who_may_silence_alerts_manage_windows_but_not_a_viewer(token, alice):
    """A window is a silence planned ahead: whoever may silence alerts (the Operator role)
    manages them too, from the page, through this API with their session."""
    from django.contrib.auth.models import Group, Permission

    from accounts.roles import OPERATOR

    operator = Group.objects.get(name=OPERATOR)
    oscar = type(alice).objects.create_user("oscar")
    oscar.groups.add(operator)
    body = {"name": "deploy", "start": T, "duration": 600}
    for user, status in ((alice, 403), (oscar, 201)):
        session = Client()
        session.force_login(user)
        assert call("post", "/api/v1/maintenance-windows", body=body, client=session).status_code == status
    entry = AuditEntry.objects.get(action="maintenancewindow.created")
    assert entry.actor == "oscar"
    operator.permissions.remove(Permission.objects.get(codename="change_alertrule"))
    session = Client()
    session.force_login(type(alice).objects.get(pk=oscar.pk))
    assert call("get", "/api/v1/maintenance-windows", client=session).status_code == 403

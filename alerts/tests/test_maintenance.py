"""Maintenance windows: one-off and recurring (RRULE in a time zone, across a
daylight-saving change); alerts inside one are recorded, not sent, and what still
fires when it ends goes out at once."""

from datetime import UTC, datetime, timedelta

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertEvent, AlertRule, MaintenanceWindow
from dashboard.models import Metric
from notifications.models import Notification


def at(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_daily_window_keeps_its_wall_clock_time_across_a_dst_change(db):
    # Madrid: CET (UTC+1) until 2026-03-29 02:00, then CEST (UTC+2).
    window = MaintenanceWindow(
        name="nightly backup",
        starts_at=at(2026, 3, 20, 0, 30),  # 01:30 in Madrid
        duration_minutes=60,
        rrule="FREQ=DAILY",
        timezone="Europe/Madrid",
    )
    window.full_clean()
    assert window.covers(at(2026, 3, 27, 0, 45))  # 01:45 CET
    assert not window.covers(at(2026, 3, 27, 1, 31))
    # After the change 01:30 local is 23:30 UTC the day before.
    assert window.covers(at(2026, 3, 29, 23, 45))
    assert not window.covers(at(2026, 3, 30, 0, 45))  # 02:45 CEST: over
    assert not window.covers(at(2026, 3, 19, 0, 45))  # before the first start


def test_a_one_off_window_and_bad_ones(db):
    once = MaintenanceWindow(name="upgrade", starts_at=at(2026, 5, 1, 10), duration_minutes=30)
    assert once.covers(at(2026, 5, 1, 10, 29)) and not once.covers(at(2026, 5, 1, 10, 30))
    from django.core.exceptions import ValidationError

    for bad in ({"timezone": "Mars/Olympus"}, {"rrule": "FREQ=SOMETIMES"}, {"match": '{a=~"("}'}):
        window = MaintenanceWindow(name="x", starts_at=at(2026, 5, 1), **bad)
        with pytest.raises(ValidationError):
            window.full_clean()


def test_alerts_inside_a_window_are_recorded_and_sent_when_it_ends(db):
    Metric.objects.create(key="cpu", label="CPU", unit="%")
    AlertRule.objects.create(match="cpu", threshold=90, sustain_seconds=0, group_wait=0, group_interval=0)
    start = at(2026, 6, 1, 12)
    MaintenanceWindow.objects.create(
        name="deploy", match='cpu{host="web1"}', starts_at=start, duration_minutes=10
    )
    evaluator = AlertEvaluator(host="web1")
    now = start.timestamp() + 60
    assert evaluator.evaluate({"cpu": 99}, now) == {"cpu"}  # fires, on the page too
    assert not Notification.objects.exists()
    assert "maintenance window" in AlertEvent.objects.get(kind="fired").detail

    evaluator.evaluate({"cpu": 99}, now + 300)
    assert not Notification.objects.exists()
    end = (start + timedelta(minutes=10)).timestamp()
    evaluator.evaluate({"cpu": 99}, end)  # the window is over: evaluated again at once
    assert list(Notification.objects.values_list("title", flat=True)) == [
        'CPU above 90: CPU is 99 % (host="web1")'
    ]
    evaluator.evaluate({"cpu": 99}, end + 1)
    assert Notification.objects.count() == 1


def test_a_cron_window_keeps_its_wall_clock_time_across_a_dst_change(db):
    # "30 1 * * *": daily at 01:30 in Madrid, CET then CEST from 2026-03-29.
    window = MaintenanceWindow(
        name="nightly backup",
        starts_at=at(2026, 3, 20, 0, 0),
        duration_minutes=60,
        cron="30 1 * * *",
        timezone="Europe/Madrid",
    )
    window.full_clean()
    assert window.covers(at(2026, 3, 27, 0, 30))  # 01:30 CET, its very start
    assert window.covers(at(2026, 3, 27, 0, 45))
    assert not window.covers(at(2026, 3, 27, 1, 30))  # 02:30 CET: over
    assert not window.covers(at(2026, 3, 27, 0, 29))
    assert window.covers(at(2026, 3, 29, 23, 45))  # 01:45 CEST
    assert not window.covers(at(2026, 3, 30, 0, 45))  # 02:45 CEST: over
    assert not window.covers(at(2026, 3, 19, 0, 45))  # before the first start
    assert window.occurrence_at(at(2026, 3, 29, 23, 45)) == (at(2026, 3, 29, 23, 30), at(2026, 3, 30, 0, 30))


def test_a_weekday_cron_window_and_its_occurrences(db):
    # Weekdays at 22:00 in New York for two hours, across midnight.
    window = MaintenanceWindow(
        name="batch",
        starts_at=at(2026, 1, 1),
        duration_minutes=120,
        cron="0 22 * * mon-fri",
        timezone="America/New_York",
    )
    window.full_clean()
    # Friday 2026-01-09 22:00 EST is Saturday 03:00 UTC; Saturday night has none.
    assert window.covers(at(2026, 1, 10, 4, 59))
    assert not window.covers(at(2026, 1, 11, 3, 30))
    starts = [began for began, _ in window.occurrences(at(2026, 1, 9), at(2026, 1, 13, 12))]
    assert starts == [at(2026, 1, 9, 3), at(2026, 1, 10, 3), at(2026, 1, 13, 3)]
    # One begun before the range that still runs into it is listed too.
    assert window.occurrences(at(2026, 1, 10, 4), at(2026, 1, 10, 4, 30)) == [
        (at(2026, 1, 10, 3), at(2026, 1, 10, 5))
    ]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"cron": "61 1 * * *"}, "not a cron expression"),
        ({"cron": "30 1 * *"}, "five fields"),
        ({"cron": "0 30 1 * * *"}, "five fields"),
        ({"cron": "@reboot"}, "not a cron expression"),
        ({"cron": "0 0 31 2 *"}, "never happens"),
        ({"cron": "0 1 * * *", "rrule": "FREQ=DAILY"}, "not both"),
    ],
)
def test_a_bad_cron_window_is_refused_saying_why(db, fields, complaint):
    from django.core.exceptions import ValidationError

    window = MaintenanceWindow(name="x", starts_at=at(2026, 5, 1), **fields)
    with pytest.raises(ValidationError) as caught:
        window.full_clean()
    assert complaint in " ".join(caught.value.message_dict["cron"])


def test_alerts_inside_a_cron_window_are_held_until_it_ends(db):
    Metric.objects.create(key="cpu", label="CPU", unit="%")
    AlertRule.objects.create(match="cpu", threshold=90, sustain_seconds=0, group_wait=0, group_interval=0)
    MaintenanceWindow.objects.create(
        name="hourly job", starts_at=at(2026, 6, 1), duration_minutes=10, cron="0 * * * *", timezone="UTC"
    )
    evaluator = AlertEvaluator(host="web1")
    during = at(2026, 6, 1, 14, 5).timestamp()
    evaluator.evaluate({"cpu": 99}, during)
    assert not Notification.objects.exists()
    evaluator.evaluate({"cpu": 99}, at(2026, 6, 1, 14, 10).timestamp())
    assert Notification.objects.count() == 1

"""ack_alert, silence_alert and unsilence_alert over the dashboard socket: permission,
validation, a broadcast to every open page, the alert history and the audit log."""

import pytest
from channels.db import database_sync_to_async

from alerts import actions
from alerts.models import AlertEvent, AlertRule
from audit.models import AuditEntry
from conftest import _make_user
from dashboard.models import Metric
from dashboard.tests.wsclient import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_url")]


@pytest.fixture
def oncall(db):
    return _make_user("oncall", "dashboard.view_metric", "alerts.change_alertrule")


@pytest.fixture
def firing_rule(db):
    cpu = Metric.objects.create(key="cpu", label="CPU", unit="%")
    return AlertRule.objects.create(metric=cpu, threshold=90, firing=True)


@database_sync_to_async
def reload(rule):
    rule.refresh_from_db()
    return rule


@database_sync_to_async
def history(rule):
    return list(AlertEvent.objects.filter(rule=rule).order_by("id").values_list("kind", "actor_name"))


@database_sync_to_async
def audit(action):
    return list(AuditEntry.objects.filter(action=action).values("actor", "target", "before", "after"))


async def test_hello_lists_firing_rules_and_who_may_act_on_them(oncall, alice, firing_rule):
    async with connected(oncall) as (_, hello):
        assert hello["can_manage_alerts"] is True
        (alert,) = hello["alerts"]
        assert alert["id"] == firing_rule.pk and alert["firing"] is True and alert["acknowledged_by"] is None
    async with connected(alice) as (_, hello):
        assert hello["can_manage_alerts"] is False
        assert [a["id"] for a in hello["alerts"]] == [firing_rule.pk]


async def test_ack_reaches_every_page_with_who_acknowledged(oncall, alice, firing_rule):
    async with connected(oncall) as (operator, _), connected(alice) as (viewer, _):
        ack = await operator.answer({"type": "ack_alert", "rule": firing_rule.pk, "id": "a1"})
        assert ack["type"] == "ack" and ack["rule"]["acknowledged_by"] == "oncall"
        seen = await viewer.wait_for_type("alert_state")
        assert seen["change"] == "acknowledged" and seen["by"] == "oncall"
        assert seen["rule"]["id"] == firing_rule.pk and seen["rule"]["acknowledged_by"] == "oncall"
    assert (await reload(firing_rule)).acknowledged_by_id == oncall.pk
    assert await history(firing_rule) == [("acknowledged", "oncall")]
    (entry,) = await audit("ack_alert")
    assert entry["actor"] == "oncall" and f"#{firing_rule.pk}" in entry["target"]


async def test_silence_and_unsilence_reach_every_page(oncall, alice, firing_rule):
    async with connected(oncall) as (operator, _), connected(alice) as (viewer, _):
        ack = await operator.answer({"type": "silence_alert", "rule": firing_rule.pk, "minutes": 90, "id": 1})
        assert ack["rule"]["silenced_by"] == "oncall" and ack["rule"]["silenced_until"]
        assert (await viewer.wait_for_type("alert_state"))["change"] == "silenced"
        assert (await reload(firing_rule)).is_silenced()

        ack = await operator.answer({"type": "unsilence_alert", "rule": firing_rule.pk, "id": 2})
        assert ack["rule"]["silenced_until"] is None
        assert (await viewer.wait_for_type("alert_state"))["change"] == "unsilenced"
    assert not (await reload(firing_rule)).is_silenced()
    assert [kind for kind, _ in await history(firing_rule)] == ["silenced", "unsilenced"]
    assert len(await audit("silence_alert")) == 1 and len(await audit("unsilence_alert")) == 1


async def test_without_the_permission_it_is_forbidden_and_nothing_changes(alice, staff, firing_rule):
    for user in (alice, staff):
        async with connected(user) as (client, _):
            for command in (
                {"type": "ack_alert", "rule": firing_rule.pk},
                {"type": "silence_alert", "rule": firing_rule.pk, "minutes": 5},
                {"type": "unsilence_alert", "rule": firing_rule.pk},
            ):
                error = await client.answer({**command, "id": command["type"]})
                assert error["code"] == "forbidden"
                assert "alerts.change_alertrule" in error["message"]
    rule = await reload(firing_rule)
    assert rule.acknowledged_at is None and rule.silenced_until is None
    assert await history(firing_rule) == []


@pytest.mark.parametrize(
    "command",
    [
        {"type": "ack_alert"},
        {"type": "ack_alert", "rule": "1"},
        {"type": "ack_alert", "rule": True},
        {"type": "ack_alert", "rule": -3},
        {"type": "silence_alert", "rule": 1},
        {"type": "silence_alert", "rule": 1, "minutes": 0},
        {"type": "silence_alert", "rule": 1, "minutes": 10081},
        {"type": "silence_alert", "rule": 1, "minutes": 2.5},
        {"type": "unsilence_alert", "rule": None},
    ],
)
async def test_bad_arguments_are_invalid(oncall, firing_rule, command):
    async with connected(oncall) as (client, _):
        error = await client.answer({**command, "id": "x"})
        assert error["type"] == "error" and error["code"] == "invalid"
    rule = await reload(firing_rule)
    assert rule.acknowledged_at is None and rule.silenced_until is None


async def test_unknown_rules_are_not_found_and_a_quiet_rule_cannot_be_acknowledged(oncall, firing_rule):
    await database_sync_to_async(AlertRule.objects.filter(pk=firing_rule.pk).update)(firing=False)
    async with connected(oncall) as (client, _):
        missing = await client.answer({"type": "ack_alert", "rule": 987654, "id": 1})
        assert missing["code"] == "not_found"
        quiet = await client.answer({"type": "ack_alert", "rule": firing_rule.pk, "id": 2})
        assert quiet["code"] == "invalid" and "not firing" in quiet["message"]
        # A rule that is not firing can still be silenced ahead of maintenance.
        assert (
            await client.answer({"type": "silence_alert", "rule": firing_rule.pk, "minutes": 5, "id": 3})
        )["type"] == "ack"


async def test_sampling_commands_are_audited_with_before_and_after(staff):
    async with connected(staff) as (client, _):
        await client.answer({"type": "set_interval", "seconds": 5, "id": 1})
        await client.answer({"type": "pause", "id": 2})
        await client.answer({"type": "resume", "id": 3})
    (interval,) = await audit("set_interval")
    assert interval["actor"] == "staff" and interval["after"] == {"interval": 5.0}
    assert interval["before"] == {"interval": 1.0}
    assert (await audit("pause"))[0]["after"] == {"paused": True}
    assert (await audit("resume"))[0]["after"] == {"paused": False}


@database_sync_to_async
def fleet_firing(rule, *hosts):
    from alerts.models import SeriesAlert
    from dashboard.series import series_id, storage_key

    for host in hosts:
        series = series_id("cpu", {"host": host})
        SeriesAlert.objects.create(
            rule=rule, series=series, key=storage_key(series), labels={"host": host}, firing=True
        )
    actions.bump_version_quietly()  # as every change of an alert does: hello reads afresh


async def test_series_are_acknowledged_and_silenced_one_by_one(oncall, alice, firing_rule):
    await fleet_firing(firing_rule, "web1", "web2")
    web1 = 'cpu{host="web1"}'
    async with connected(oncall) as (operator, hello), connected(alice) as (viewer, _):
        (alert,) = hello["alerts"]
        assert {s["series"] for s in alert["series"]} == {web1, 'cpu{host="web2"}'}
        assert alert["series"][0]["labels"] == {"host": "web1"}

        ack = await operator.answer({"type": "ack_alert", "rule": firing_rule.pk, "series": web1, "id": 1})
        by_series = {s["series"]: s["acknowledged_by"] for s in ack["rule"]["series"]}
        assert by_series == {web1: "oncall", 'cpu{host="web2"}': None}
        seen = await viewer.wait_for_type("alert_state")
        assert (seen["change"], seen["series"]) == ("acknowledged", web1)

        silenced = await operator.answer(
            {"type": "silence_alert", "rule": firing_rule.pk, "series": web1, "minutes": 5, "id": 2}
        )
        assert silenced["type"] == "ack"
        assert (await viewer.wait_for_type("alert_state"))["series"] == web1

        for bad in ("cpu{host=web1}", 5, 'cpu{b="1",a="2"}'):
            error = await operator.answer(
                {"type": "ack_alert", "rule": firing_rule.pk, "series": bad, "id": 3}
            )
            assert error["code"] == "invalid"
        missing = await operator.answer(
            {"type": "unsilence_alert", "rule": firing_rule.pk, "series": 'cpu{host="db9"}', "id": 4}
        )
        assert missing["code"] == "invalid"
    assert [kind for kind, _ in await history(firing_rule)] == ["acknowledged", "silenced"]
    (entry,) = await audit("ack_alert")
    assert 'host="web1"' in entry["target"] and entry["after"]["series"] == web1

"""Alert notifications are stored as a message id + parameters and shown in each
viewer's language: Spanish to a Spanish page, English to an English one."""

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule
from dashboard.control.scope import language_from_scope
from dashboard.models import Metric
from notifications.messages import render
from notifications.models import Notification
from notifications.services import hello_state
from tests.realclients import open_socket, session_cookie


@pytest.fixture
def cpu(db):
    return Metric.objects.create(key="cpu", label="CPU", unit="%")


@pytest.fixture
def rule(cpu):
    return AlertRule.objects.create(
        metric=cpu, threshold=90, sustain_seconds=2, cooldown_seconds=0, group_wait=0, group_interval=0
    )


def fire(rule, value=92.5):
    evaluator = AlertEvaluator()
    for second in range(3):
        evaluator.evaluate({"cpu": value}, float(second))
    return evaluator


def test_a_fired_alert_reads_in_each_language(rule):
    fire(rule)
    notification = Notification.objects.get()
    assert notification.title == "CPU above 90: CPU is 92.5 %"  # stored in English
    english = notification.as_dict(language="en")
    spanish = notification.as_dict(language="es")
    assert english["title"] == "CPU above 90: CPU is 92.5 %"
    assert spanish["title"] == "CPU por encima de 90: CPU está en 92,5 %"
    assert spanish["body"] == "CPU lleva 2 s por encima de 90 %."


def test_built_in_metric_labels_are_translated_and_an_admins_own_are_kept(db):
    assert render(
        "alert.resolved",
        {
            "rule": "",
            "metric": "Memory used",
            "comparison": "above",
            "threshold": 80,
            "value": 12,
            "unit": " %",
        },
        "es",
    )[0] == ("Resuelto: Memoria usada por encima de 80")
    params = {"rule": "Checkout latency", "metric": "p99", "value": 1, "unit": ""}
    assert render("alert.resolved", params, "es")[0] == "Resuelto: Checkout latency"


def test_an_unknown_message_keeps_the_stored_text(db):
    notification = Notification.objects.create(title="Hello", message_id="from.the.future", message_params={})
    assert notification.as_dict(language="es")["title"] == "Hello"


def test_hello_state_is_in_the_viewers_language(rule, alice):
    fire(rule)
    assert hello_state(alice, language="es")["recent"][0]["title"].startswith("CPU por encima de 90")
    assert hello_state(alice, language="en")["recent"][0]["title"].startswith("CPU above 90")


@pytest.mark.parametrize("switch_off", ["rule", "metric"])
def test_switching_off_a_firing_rule_resolves_it_once(rule, switch_off):
    evaluator = fire(rule)
    assert AlertRule.objects.get().firing
    if switch_off == "rule":
        AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    else:
        Metric.objects.filter(key="cpu").update(enabled=False)
    for second in range(3, 20):
        firing = evaluator.evaluate({"cpu": 99}, float(second))
    assert firing == set()
    assert not AlertRule.objects.get().firing
    resolved = Notification.objects.order_by("id").last()
    assert resolved.title == "Resolved: CPU above 90"
    assert resolved.level == "success"
    assert resolved.as_dict(language="es")["title"] == "Resuelto: CPU por encima de 90"
    assert Notification.objects.count() == 2, "resolved once, not on every reload"


def test_a_rule_disabled_while_no_collector_ran_is_resolved_by_the_next_one(rule):
    AlertRule.objects.filter(pk=rule.pk).update(firing=True, enabled=False)
    AlertEvaluator().evaluate({"cpu": 10}, 0.0)
    assert not AlertRule.objects.get().firing
    assert list(Notification.objects.values_list("title", flat=True)) == ["Resolved: CPU above 90"]


@pytest.mark.parametrize(
    ("cookies", "accept", "expected"),
    [
        ({}, "", "en"),
        ({}, "es-ES,es;q=0.9,en;q=0.5", "es"),
        ({}, "fr-FR,fr;q=0.9", "en"),
        ({"django_language": "en"}, "es-ES", "en"),  # a choice made on the page wins
        ({"django_language": "es"}, "en-GB", "es"),
    ],
)
def test_a_socket_speaks_the_pages_language(cookies, accept, expected):
    scope = {"cookies": cookies, "headers": [(b"accept-language", accept.encode())]}
    assert language_from_scope(scope) == expected


@pytest.fixture
def tabs(alice, bob):
    """alice chose Spanish on the page (the cookie /i18n/setlang/ sets); bob did not."""
    return {**session_cookie(alice), "django_language": "es"}, session_cookie(bob)


@pytest.mark.slow
async def test_one_alert_reaches_a_spanish_and_an_english_page_each_in_its_language(
    daphne_workers, tabs, cpu
):
    from asgiref.sync import sync_to_async

    (base_url,) = daphne_workers(1)
    spanish, english = tabs
    async with open_socket(base_url, spanish) as es_tab, open_socket(base_url, english) as en_tab:
        for tab in (es_tab, en_tab):
            await tab.wait_for(lambda m: m.get("type") == "hello")
        rule = await sync_to_async(AlertRule.objects.create)(
            metric=cpu, threshold=90, sustain_seconds=2, group_wait=0, group_interval=0
        )
        await sync_to_async(fire)(rule, 95)
        es = await es_tab.wait_for(lambda m: m.get("type") == "notification")
        en = await en_tab.wait_for(lambda m: m.get("type") == "notification")
    assert es["notification"]["title"] == "CPU por encima de 90: CPU está en 95 %"
    assert en["notification"]["title"] == "CPU above 90: CPU is 95 %"


def test_an_unnamed_rule_is_named_in_the_viewers_language_on_the_alert_strip(rule):
    from notifications.messages import localize_rule

    state = rule.as_state()
    assert state["name"] == "CPU above 90"  # the stored, English form
    assert localize_rule(state, "es")["name"] == "CPU por encima de 90"
    assert localize_rule(state, "en")["name"] == "CPU above 90"
    rule.name = "Hot CPU"
    named = rule.as_state()
    assert localize_rule(named, "es")["name"] == "Hot CPU"  # a name someone chose stays as written

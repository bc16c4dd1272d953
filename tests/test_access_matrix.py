"""Every persona against every endpoint, on a real worker: tests/access_matrix.py is the table."""

import asyncio
import json

import httpx
import pytest

from tests import access_matrix
from tests.access_matrix import PERSONA_KEYS, ROWS
from tests.realclients import open_socket, session_cookie, try_socket


def test_docs_security_md_is_the_table():
    assert access_matrix.DOC.read_text() == access_matrix.render(), (
        "docs/security.md is out of date: run `.venv/bin/python -m tests.access_matrix`"
    )


def test_every_row_has_a_cell_for_every_persona():
    for row in ROWS:
        assert sorted(row.expected) == sorted(PERSONA_KEYS), row.label


@pytest.fixture
def people(alice, bob, charlie, staff, admin_user):
    from alerts.models import AlertRule
    from dashboard.models import Metric
    from notifications.services import notify

    users = {
        "alice": alice,
        "bob": bob,
        "charlie": charlie,
        "staff": staff,
        "operator": role_member("operator", "Operator"),
        "admin_role": role_member("admin_role", "Admin"),
        "admin": admin_user,
    }
    cookies = {name: session_cookie(user) for name, user in users.items()}
    cookies["anonymous"] = None
    ids = {name: user.pk for name, user in users.items()}
    ids["anonymous"] = alice.pk
    notification = notify(alice, "for alice only")
    rule = AlertRule.objects.create(metric=Metric.objects.create(key="cpu"), threshold=90, firing=True)
    _dashboards_of(alice, charlie)
    return {
        "cookies": cookies,
        "ids": ids,
        "alice": alice.pk,
        "notification": notification.pk,
        "rule": rule.pk,
    }


def _dashboards_of(alice, charlie):
    from django.contrib.auth.models import Group

    from boards import store

    Group.objects.create(name="ops").user_set.add(charlie)
    alices = store.Author(name="alice", owner=alice)
    panel = {
        "id": 1,
        "title": "CPU",
        "type": "stat",
        "series": ["cpu"],
        "grid": {"x": 0, "y": 0, "w": 3, "h": 2},
    }
    for uid, visibility in (
        ("alice-private", "private"),
        ("for-everyone", "everyone"),
        ("for-ops", {"groups": ["ops"]}),
    ):
        store.save({"uid": uid, "title": uid, "visibility": visibility, "panels": [panel]}, author=alices)


def role_member(username, role):
    """A user whose permissions come from a role alone (the groups a migration creates)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="x-role-member-x")
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def fill(template, persona, people):
    return (
        template.replace("{alice}", str(people["alice"]))
        .replace("{own}", str(people["ids"][persona]))
        .replace("{notification}", str(people["notification"]))
        .replace("{rule}", str(people["rule"]))
    )


def describe_http(response):
    if response.status_code == 302 and "/login/" in response.headers.get("location", ""):
        return access_matrix.LOGIN
    return str(response.status_code)


async def http_outcome(base_url, cookies, path):
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=10) as client:
        return describe_http(await client.get(path))


async def sse_outcome(base_url, cookies, channels):
    params = [("channel", channel) for channel in channels.split(",")]
    async with (
        httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=10) as client,
        client.stream("GET", "/events/", params=params) as response,
    ):
        return str(response.status_code)


async def sse_origin_outcome(base_url, cookies, target):
    origin, channels = target.split()
    params = [("channel", channel) for channel in channels.split(",")]
    async with (
        httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=10) as client,
        client.stream("GET", "/events/", params=params, headers={"Origin": origin}) as response,
    ):
        return str(response.status_code)


async def connect_outcome(base_url, cookies, origin):
    outcome, detail = await try_socket(base_url, cookies, origin=None if origin == "same-origin" else origin)
    if outcome == "hello":
        return access_matrix.HELLO
    if outcome == "refused" and detail == 403:
        return access_matrix.REFUSED
    return f"{outcome} {detail}"


def describe_answer(answer):
    if answer["type"] == "error":
        return f"error `{answer['code']}`"
    return answer["type"]


async def command_outcome(base_url, cookies, command):
    if cookies is None:
        return await connect_outcome(base_url, None, "same-origin")
    message = json.loads(command)
    async with open_socket(base_url, cookies) as socket:
        await socket.wait_for(lambda m: m.get("type") == "hello")
        answer = await socket.command(message.pop("type"), **message)
        return describe_answer(answer)


async def outcome_of(row, persona, base_url, people):
    cookies = people["cookies"][persona]
    target = fill(row.target, persona, people)
    if row.kind == "http":
        return await http_outcome(base_url, cookies, target)
    if row.kind == "sse":
        return await sse_outcome(base_url, cookies, target)
    if row.kind == "sse-origin":
        return await sse_origin_outcome(base_url, cookies, target)
    if row.kind == "ws-connect":
        return await connect_outcome(base_url, cookies, target)
    return await command_outcome(base_url, cookies, target)


@pytest.mark.slow
async def test_the_access_matrix_holds_on_a_real_worker(web_workers, people):
    (base_url,) = web_workers(1)
    actual = {}
    for row in ROWS:
        probes = [outcome_of(row, persona, base_url, people) for persona in PERSONA_KEYS]
        results = await asyncio.gather(*probes)
        actual[row.label] = dict(zip(PERSONA_KEYS, results, strict=True))
    wrong = [
        f"{row.label} as {persona}: expected {row.expected[persona]!r}, got {actual[row.label][persona]!r}"
        for row in ROWS
        for persona in PERSONA_KEYS
        if actual[row.label][persona] != row.expected[persona]
    ]
    assert not wrong, "access matrix cells that do not hold:\n" + "\n".join(wrong)

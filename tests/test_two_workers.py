"""Two daphne workers behind nginx: a client reaches everything whichever worker it landed on.

Clients are pinned to worker 1 and worker 2 directly (bypassing nginx); events
come from a separate `manage.py` process and broadcasts from the *other* worker.
"""

import asyncio

import httpx
import pytest

from deploy.supervisor import Supervisor, free_port
from tests.realclients import EventStream, open_socket, session_cookie

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(subprocess_env, tmp_path):
    from deploy.stack import start_stack

    supervisor = Supervisor(env=subprocess_env)
    try:
        yield start_stack(supervisor, port=free_port(), collector=False, log_dir=tmp_path)
    finally:
        supervisor.stop()


@pytest.fixture
def cookies(alice, bob, staff):
    return {"alice": session_cookie(alice), "bob": session_cookie(bob), "staff": session_cookie(staff)}


def shell(manage, code):
    result = manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result


async def test_a_metric_from_the_shell_reaches_streams_on_both_workers_and_through_nginx(
    stack, cookies, manage
):
    first, second = stack.worker_urls
    async with (
        EventStream(first, ["metrics"], cookies["alice"]) as on_first,
        EventStream(second, ["metrics"], cookies["bob"]) as on_second,
        EventStream(stack.base_url, ["metrics"], cookies["alice"]) as through_nginx,
    ):
        assert (on_first.status, on_second.status, through_nginx.status) == (200, 200, 200)
        await asyncio.to_thread(
            shell, manage, "from dashboard.live import publish_metric; publish_metric('orders', 42)"
        )

        def is_orders(event):
            return event["event"] == "metric" and event["data"]["name"] == "orders"

        received = [await stream.wait_for(is_orders) for stream in (on_first, on_second, through_nginx)]
    assert [event["data"]["value"] for event in received] == [42, 42, 42]
    assert len({event["id"] for event in received}) == 1, "every worker must give the event the same id"


async def test_a_notification_from_the_shell_reaches_the_users_tabs_on_both_workers_only(
    stack, cookies, manage
):
    first, second = stack.worker_urls
    async with (
        open_socket(first, cookies["alice"]) as alice_first,
        open_socket(second, cookies["alice"]) as alice_second,
        open_socket(second, cookies["bob"]) as bob_second,
    ):
        for socket in (alice_first, alice_second, bob_second):
            await socket.wait_for(lambda m: m.get("type") == "hello")
        command = ["notify", "--user", "alice", "--body", "on both", "Deploy done"]
        result = await asyncio.to_thread(manage, *command)
        assert result.returncode == 0, result.stderr

        def is_deploy(message):
            return message.get("type") == "notification" and message["notification"]["title"] == "Deploy done"

        got = [await socket.wait_for(is_deploy) for socket in (alice_first, alice_second)]
        assert got[0]["notification"]["id"] == got[1]["notification"]["id"]
        assert [message["unread"] for message in got] == [1, 1]

        # Marking it read on worker 1 lowers the count in the tab on worker 2.
        answer = await alice_first.command("mark_read", id=got[0]["notification"]["id"])
        assert answer == {"type": "ack", "id": got[0]["notification"]["id"], "unread": 0}
        await alice_second.wait_for(lambda m: m.get("type") == "unread" and m["count"] == 0)

        await asyncio.sleep(0.5)  # time for a wrong delivery to arrive
        assert bob_second.of_type("notification") == []
        assert bob_second.of_type("unread") == []


async def test_control_on_one_worker_is_broadcast_to_dashboards_on_the_other(stack, cookies):
    first, second = stack.worker_urls
    async with (
        open_socket(first, cookies["staff"]) as staff_first,
        open_socket(second, cookies["alice"]) as alice_second,
        open_socket(first, cookies["bob"]) as bob_first,
    ):
        for socket in (staff_first, alice_second, bob_first):
            await socket.wait_for(lambda m: m.get("type") == "hello")
        assert (await staff_first.command("set_interval", seconds=2))["type"] == "ack"
        changed = await alice_second.wait_for(lambda m: m.get("type") == "interval_changed")
        assert changed["interval"] == 2.0
        assert changed["by"] == "staff"

        assert (await staff_first.command("pause"))["type"] == "ack"
        for socket in (alice_second, bob_first):
            state = await socket.wait_for(lambda m: m.get("type") == "sampling_state" and m["paused"])
            assert state["interval"] == 2.0
        assert (await staff_first.command("resume"))["type"] == "ack"
        await alice_second.wait_for(lambda m: m.get("type") == "sampling_state" and not m["paused"])

        # Presence crosses workers too: the staff user on worker 1 is listed on worker 2.
        await alice_second.wait_for(
            lambda m: (
                m.get("type") == "presence"
                and "staff" in str(m.get("online"))
                or m.get("type") == "hello"
                and "staff" in str(m.get("online"))
            )
        )


async def test_nginx_refuses_an_oversized_request_line_with_414(stack, cookies):
    async with httpx.AsyncClient(base_url=stack.base_url, cookies=cookies["alice"], timeout=10) as client:
        response = await client.get("/events/?channel=metrics&pad=" + "x" * 20_000)
        assert response.status_code == 414
        assert (await client.get("/healthz")).status_code == 200

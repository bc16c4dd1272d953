"""Redis away: a real worker and a real redis-server of the test's own (never the
machine's), which the test kills by PID and starts again.

- Signing in and signed-in pages keep working from the database; /healthz says Redis is down.
- A notification sent during the outage reaches a socket that stayed open, once its
  worker is back on Redis (not only a tab that reconnects).
"""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import PASSWORD, ROOT
from tests.realclients import open_socket


def sign_in(client):
    """The login form, as a browser fills it in."""
    page = client.get("/accounts/login/")
    assert page.status_code == 200, page.text[:300]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/accounts/login/",
        data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{client.base_url}/accounts/login/"},
    )


@pytest.mark.slow
def test_it_signs_in_and_serves_pages_while_redis_is_down(web_workers, own_redis, alice):
    (base_url,) = web_workers(1, env={"REDIS_URL": own_redis.url})
    with httpx.Client(base_url=base_url, timeout=10) as earlier:
        assert sign_in(earlier).status_code == 302
        assert earlier.get("/").status_code == 200

        own_redis.stop()

        # A session cached in Redis before the outage is read from the database.
        assert earlier.get("/").status_code == 200
        health = earlier.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "database": "ok", "redis": "down"}
        with httpx.Client(base_url=base_url, timeout=10) as during:
            answer = sign_in(during)
            assert answer.status_code == 302, answer.text[:500]
            assert during.get("/").status_code == 200
            assert during.get("/admin/").status_code == 302  # not staff: sent to the admin's login
            assert during.post("/accounts/logout/", headers=csrf_headers(during)).status_code == 302
            assert during.get("/").status_code == 302  # logged out, from the database alone

        own_redis.start()
        assert earlier.get("/").status_code == 200
        assert earlier.get("/healthz").status_code == 200
    log = Path(web_workers.workers[0].log_path).read_text()
    assert "Traceback" not in log, log[-3000:]


def csrf_headers(client):
    return {"X-CSRFToken": client.cookies["csrftoken"], "Referer": f"{client.base_url}/"}


@pytest.mark.slow
async def test_a_notification_sent_during_an_outage_reaches_the_socket_that_stayed_open(
    web_workers, own_redis, manage, subprocess_env, alice, alice_cookies
):
    env = {"REDIS_URL": own_redis.url}
    (base_url,) = web_workers(1, env=env)
    async with open_socket(base_url, alice_cookies) as socket:
        await socket.wait_for(lambda m: m.get("type") == "hello")
        own_redis.stop()
        sent = await asyncio.to_thread(manage, "notify", "--user", "alice", "during the outage", env=env)
        assert sent.returncode == 0, sent.stderr
        # Pushed again the moment Redis answers, as the collector does, from a process
        # of its own: before the worker has subscribed again, so that publish reaches
        # nobody.
        repush = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", REPUSH],
            cwd=ROOT,
            env={**subprocess_env, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert (await asyncio.to_thread(repush.stdout.readline)).strip() == "waiting"
        own_redis.start()
        out, _ = await asyncio.to_thread(repush.communicate, timeout=60)
        assert out.split()[-1] == "1", out
        message = await socket.wait_for(
            lambda m: m.get("type") == "notification",
            timeout=30,
            message="the notification sent during the outage",
        )
        assert message["notification"]["title"] == "during the outage"
        assert socket.close_code is None, "the socket stayed open throughout"
        # Once, however many ways it arrived: a ping answered after the re-push and
        # the catch-up both had their chance shows nothing more came.
        await asyncio.sleep(2)
        assert (await socket.command("ping"))["type"] == "pong"
        assert len(socket.of_type("notification")) == 1


REPUSH = """
from datetime import timedelta
from django.conf import settings
from django.utils import timezone
from deploy.supervisor import redis_answers
from notifications.services import push_pending
print("waiting", flush=True)
while not redis_answers(settings.REDIS_URL, timeout=0.2):
    pass
print(push_pending(now=timezone.now() + timedelta(seconds=10)))
"""

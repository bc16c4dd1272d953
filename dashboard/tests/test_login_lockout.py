"""Login lockout (django-axes): 10 failures for one username from one client lock that
pair out, on the site's and the admin's login, on every worker, whatever address
the client claims in its headers."""

import os

import httpx
import pytest

from conftest import PASSWORD, RUN_ID, database_url_for_subprocesses

LIMIT = 10
LOCKED = "Account temporarily locked"
CSRF = "c" * 32  # Django accepts its 32-character secret as the form token too
COOKIES = {"csrftoken": CSRF}


def fail(client, path, username="alice", times=LIMIT, **extra):
    for _ in range(times):
        response = client.post(path, {"username": username, "password": "wrong"}, **extra)
        assert response.status_code in (200, 429)
    return response


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_it_locks_a_username_and_client_out_after_ten_failures(client, staff, path):
    fail(client, path, "staff", LIMIT - 1)
    assert client.post(path, {"username": "staff", "password": PASSWORD}).status_code == 302
    client.logout()
    # The success reset the count: ten more failures are needed.
    response = fail(client, path, "staff")
    assert response.status_code == 429
    response = client.post(path, {"username": "staff", "password": PASSWORD})
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_is_for_that_username_and_client_only(client, alice, bob):
    fail(client, "/accounts/login/", "alice", REMOTE_ADDR="10.0.0.1")
    locked = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
    )
    assert locked.status_code == 429
    other_client = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.2"
    )
    assert other_client.status_code == 302
    client.logout()
    other_user = client.post(
        "/accounts/login/", {"username": "bob", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1"
    )
    assert other_user.status_code == 302


def test_the_lock_page_is_a_page_not_a_bare_403(client, alice):
    response = fail(client, "/accounts/login/", "alice", LIMIT + 1)
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    assert "<h2>Account temporarily locked</h2>" in response.content.decode()


def test_the_lockout_outlasts_five_minutes(client, alice, settings):
    from datetime import timedelta

    assert timedelta(minutes=5) <= settings.AXES_COOLOFF_TIME
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_HANDLER == "axes.handlers.database.AxesDatabaseHandler"  # shared by every worker


def post_login(client, username, password, headers=None):
    return client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": CSRF},
        headers=headers or {},
    )


@pytest.fixture
def stack_env(transactional_db, redis_url):
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": RUN_ID,
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.slow
def test_behind_nginx_the_lockout_holds_on_both_workers_whatever_address_a_client_claims(
    stack_env, alice, tmp_path
):
    from deploy.stack import start_stack
    from deploy.supervisor import Supervisor, free_port

    supervisor = Supervisor(env=stack_env)
    try:
        stack = start_stack(supervisor, port=free_port(), log_dir=tmp_path, collector=False)
        attacker = httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10, cookies=COOKIES)
        # Another machine: a second loopback address, as nginx sees it.
        neighbour = httpx.Client(
            base_url=stack.base_url,
            trust_env=False,
            timeout=10,
            cookies=COOKIES,
            transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        )
        with attacker, neighbour:
            for attempt in range(LIMIT):
                # A new invented address each time: nginx must not pass it on as the client's.
                spoof = {"X-Forwarded-For": f"203.0.113.{attempt}", "X-Real-IP": f"198.51.100.{attempt}"}
                post_login(attacker, "alice", "wrong", spoof)
            locked = post_login(attacker, "alice", PASSWORD, {"X-Forwarded-For": "203.0.113.200"})
            assert locked.status_code == 429, locked.text[:300]
            assert LOCKED in locked.text
            # Round-robin: the next request goes to the other worker, which knows too.
            assert post_login(attacker, "alice", PASSWORD).status_code == 429
            # One client's lockout is not everyone's.
            assert post_login(neighbour, "alice", PASSWORD).status_code == 302
        upstreams = {line.rsplit("upstream=", 1)[-1] for line in stack.access_log.read_text().splitlines()}
        assert len(upstreams) == 2, f"both workers should have answered: {upstreams}"
    finally:
        supervisor.stop()


@pytest.mark.slow
def test_the_lockout_needs_no_redis(stack_env, alice, own_redis, daphne_workers):
    # The worker's Redis is gone from the start: the attempts live in the database.
    own_redis.stop()
    (base_url,) = daphne_workers(1, env={"REDIS_URL": own_redis.url})
    with httpx.Client(base_url=base_url, trust_env=False, timeout=20, cookies=COOKIES) as client:
        for _ in range(LIMIT):
            assert post_login(client, "alice", "wrong").status_code in (200, 429)
        locked = post_login(client, "alice", PASSWORD)
        assert locked.status_code == 429
        assert LOCKED in locked.text

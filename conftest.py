"""Shared fixtures: personas, real Redis, and real web workers (deploy/worker.py, on the
server ASGI_SERVER names: `ASGI_SERVER=daphne make test-daphne` runs the daphne subset).

Each test run works under its own Redis key prefix and its own test database,
so several runs (and a `make run` on the same machine) never see each other.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realclients import session_cookie

RUN_ID = f"livedash-test-{os.getpid()}"

ROOT = Path(__file__).resolve().parent
PASSWORD = "correct-horse-battery-staple"


def pytest_report_header(config):
    from django.conf import settings

    return f"web workers: {settings.ASGI_SERVER} (ASGI_SERVER)"


def pytest_configure(config):
    # pytest-django has loaded the settings by now; the channel layer and the
    # Redis clients are built lazily, so retargeting the prefix here is enough.
    from django.conf import settings

    settings.REDIS_PREFIX = RUN_ID
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"{RUN_ID}:ws"
    settings.CACHES["default"]["KEY_PREFIX"] = f"{RUN_ID}:cache"
    _flush_again_after_a_deadlock()


DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE


def _flush_again_after_a_deadlock(attempts=5):
    """A transactional test ends by truncating every table in one statement, which
    locks them one after another. A process the test left running (the stack's
    collector, for a whole module) may meanwhile hold one of those tables and ask
    for another: PostgreSQL then ends one side of the deadlock, often the TRUNCATE,
    and the test would fail on what the product handles (its writers retry). The
    writer's transaction is short, so the flush is run again."""
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        for attempt in range(1, attempts + 1):
            try:
                return flush(self)
            except CommandError as exc:
                if attempt == attempts or not _caused_by_deadlock(exc):
                    raise

    TransactionTestCase._fixture_teardown = _fixture_teardown


def _caused_by_deadlock(exc):
    while exc is not None:
        if getattr(exc, "sqlstate", None) == DEADLOCK_DETECTED:
            return True
        exc = exc.__cause__
    return False


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database that other processes (web workers, commands) can open too."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    test = db.setdefault("TEST", {})
    if db["ENGINE"].endswith("sqlite3"):
        test["NAME"] = f"/tmp/{RUN_ID}.sqlite3"
    else:
        test["NAME"] = f"test_livedash_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, dropped cleanly at the end of the run.

    Threads of this process that served async code (the streams' shared thread,
    `database_sync_to_async` pools) each opened their own connection and never
    close it: Django closes a thread's connections only on that thread. Left open,
    they make the final DROP DATABASE fail ("being accessed by other users"), so
    the run ends them first, by PID, on the server; other databases are untouched."""
    yield
    from django.db import connection, connections

    connections.close_all()
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )


@pytest.fixture(scope="session")
def redis_url():
    """The real Redis the suite talks to; a missing one fails in one clear line."""
    from django.conf import settings

    from deploy.supervisor import redis_answers

    if not redis_answers(settings.REDIS_URL):
        pytest.fail(
            f"Redis is not answering at {settings.REDIS_URL}. Start one with "
            "`redis-server --port 6379 --save '' --daemonize yes` or set REDIS_URL.",
            pytrace=False,
        )
    return settings.REDIS_URL


@pytest.fixture(autouse=True)
def _clean_redis_keys(request):
    """Drop this run's Redis keys after each test that used Redis."""
    yield
    if "redis_url" not in request.fixturenames:
        return
    from dashboard.redis import get_sync_client

    client = get_sync_client()
    keys = list(client.scan_iter(match=f"{RUN_ID}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _forget_process_caches():
    """Each test's database starts empty: what this process remembered of the last
    one (tokens found, metric names registered) must not carry over."""
    yield
    from api import models as api_models
    from dashboard import live, rollups

    api_models.forget_found_tokens()
    live.forget_registered_names()
    rollups.forget_registered_series()


# Personas: alice can view metrics, bob can view metrics too (for "another user"
# cases), charlie is logged in without permissions, staff can control sampling,
# admin is a superuser.
def _make_user(username, *perms, **flags):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.org", **flags
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def alice(db):
    return _make_user("alice", "dashboard.view_metric")


@pytest.fixture
def bob(db):
    return _make_user("bob", "dashboard.view_metric")


@pytest.fixture
def charlie(db):
    return _make_user("charlie")


@pytest.fixture
def staff(db):
    return _make_user("staff", "dashboard.view_metric", "dashboard.change_metric", is_staff=True)


@pytest.fixture
def admin_user(db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser("admin", "admin@example.org", PASSWORD)


def database_url_for_subprocesses():
    """DATABASE_URL naming the test database, for processes the test starts."""
    from django.db import connection

    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@pytest.fixture
def subprocess_env(transactional_db, redis_url):
    """Environment for a separate OS process that shares this test's DB and Redis."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": RUN_ID,
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def manage(subprocess_env):
    """Run `manage.py ARGS` as a separate OS process; returns the CompletedProcess."""

    def run(*args, env=None, timeout=60):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**subprocess_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def web_workers(subprocess_env, tmp_path):
    """Start real web workers (`python -m deploy.worker`) on free ports: `start(n)` returns
    their base URLs. Logs are kept in tmp_path and checked for tracebacks by tests that care."""
    from deploy.supervisor import Supervisor, free_port, wait_for_port

    supervisor = Supervisor(env=subprocess_env)
    workers = []

    def start(count=1, env=None):
        urls = []
        for index in range(count):
            port = free_port()
            log = open(tmp_path / f"worker-{len(workers) + index}.log", "wb")  # noqa: SIM115
            process = supervisor.worker(f"worker-{port}", port, env=env, stdout=log, stderr=subprocess.STDOUT)
            wait_for_port(port, process=process)
            process.port = port
            process.log_path = log.name
            workers.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    start.workers = workers
    yield start
    supervisor.stop()


@pytest.fixture
def daphne_workers(web_workers):
    """web_workers under its name from before ASGI_SERVER (the server is whichever that names)."""
    return web_workers


# Session cookies of the personas, for clients that talk to real workers over real sockets.
@pytest.fixture
def alice_cookies(alice):
    return session_cookie(alice)


@pytest.fixture
def bob_cookies(bob):
    return session_cookie(bob)


@pytest.fixture
def charlie_cookies(charlie):
    return session_cookie(charlie)


@pytest.fixture
def staff_cookies(staff):
    return session_cookie(staff)


@pytest.fixture
def own_redis():
    """A redis-server of the test's own on a free port (never the machine's), which it
    can stop and start again: an outage without touching the Redis other runs share."""
    from deploy.supervisor import free_port, start_redis

    port = free_port()
    servers = [start_redis(port)]

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"

        @staticmethod
        def stop():
            servers[-1].kill()
            servers[-1].wait(10)

        @staticmethod
        def start():
            # A fresh, empty server on the same port, as after a restart without persistence.
            servers.append(start_redis(port))

    yield OwnRedis
    for server in servers:
        with contextlib.suppress(ProcessLookupError):
            server.kill()
        server.wait(10)


@pytest.fixture
def stack(subprocess_env, tmp_path):
    """The native stack (`make stack`): nginx -> two web workers, the collector,
    on this test's database and Redis."""
    from deploy.stack import start_stack
    from deploy.supervisor import Supervisor, free_port

    supervisor = Supervisor(env=subprocess_env)
    try:
        yield start_stack(supervisor, port=free_port(), log_dir=tmp_path)
    finally:
        supervisor.stop()


def drop_stored_events(channel, *event_ids):
    """Delete events from the event store, as retention does when they expire."""
    from dashboard.redis import get_sync_client
    from dashboard.storage import event_key

    get_sync_client().delete(*[event_key(channel, event_id) for event_id in event_ids])


def assert_cpu_ratio(ratio, phase, floor):
    """A bench's CPU ratio is the two phases' figures divided, or None when either spent
    less than the clock's 10 ms tick in a smoke run: never a made-up figure."""
    measured, floor_measured = phase["cpu"]["ms_per_1000_deliveries"], floor["cpu"]["ms_per_1000_deliveries"]
    if measured and floor_measured:
        assert ratio == round(measured / floor_measured, 2)
    else:
        assert ratio is None


@pytest.fixture
def identity_provider(tmp_path):
    """A real OpenID Connect provider in its own process (tests/idp/): add users, then
    `start(base_url, ...)` with the livedash addresses whose callbacks it accepts."""
    from tests.idp.process import IdentityProviderProcess

    provider = IdentityProviderProcess(tmp_path / "idp")
    yield provider
    provider.stop()

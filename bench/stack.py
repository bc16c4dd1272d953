"""The stack the bench measures: its own Redis, its own database, fresh servers per phase.

Nothing here touches the machine's Redis or data: the bench starts a
redis-server on a free port and keeps its database in a temporary folder (SQLite),
or, given a PostgreSQL server's URL, creates a database of its own there and drops
it at the end, so a run can never disturb (or be disturbed by) a `make run`, a test
run or another bench. Servers are restarted for every phase so each memory figure starts from
a process that has held no connections before.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dotenv import load_dotenv

from deploy.pushpin import Pushpin, PushpinPorts
from deploy.supervisor import Supervisor, free_port, start_redis, wait_for_port

PATHS = ("floor", "sse", "sse-daphne", "ws", "ws-daphne", "pushpin-floor", "pushpin")
# The product's paths on daphne; every other product path runs on the default server (uvicorn).
DAPHNE_PATHS = ("sse-daphne", "ws-daphne")
# Paths whose clients connect to Pushpin rather than to the servers themselves.
PUSHPIN_PATHS = ("pushpin-floor", "pushpin")
# The peers: no auth, nothing of the product's to profile.
FLOOR_PATHS = ("floor", "pushpin-floor")


def bench_environment(database_url, redis_url):
    """The settings every bench process runs with: production-shaped, local, quiet."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"bench-{os.getpid()}",
        # DEBUG off as in production (DEBUG keeps every SQL query in memory), but
        # plain HTTP on localhost, so none of the HTTPS-only cookie and redirect rules.
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # The clients share a few users' sessions (many tabs per user), so the per-user cap
        # on open streams and sockets would refuse most of them; the suite tests the cap.
        "MAX_CONNECTIONS_PER_USER": "1000000",
        # bench.ingest sends single points at the default limit's own rate (200/s), and a
        # fixed one-second window refuses the odd request that lands in a crowded second.
        "API_TOKEN_REQUESTS_PER_SECOND": "1000",
    }


class Server:
    def __init__(self, process, port, log_path):
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def pid(self):
        return self.process.pid

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines=20):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _postgres_admin(server_url):
    """An autocommit connection to the PostgreSQL server of `server_url`'s maintenance
    database (CREATE and DROP DATABASE cannot run inside a transaction)."""
    import psycopg

    parts = urlsplit(server_url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def postgres_server():
    """The PostgreSQL server that settings would use (the environment's DATABASE_URL, else
    what `make run` wrote to .env) for a bench to make its own database on; None when
    that is not PostgreSQL (the bench then runs on SQLite, and its results say which)."""
    load_dotenv(os.environ.get("ENV_FILE") or Path(__file__).resolve().parent.parent / ".env", override=False)
    url = os.environ.get("DATABASE_URL", "")
    return url if url.split(":", 1)[0] in ("postgres", "postgresql", "pgsql") else None


class BenchStack:
    def __init__(self, workers=2, users=20, keep_logs=False, postgres_url=None, env=None):
        """`postgres_url`: a PostgreSQL server (any database on it) to make the bench's
        database on, instead of SQLite; `env`: settings added to `bench_environment`'s."""
        self.workers = workers
        self.postgres_url = postgres_url
        self.database_name = None
        self.extra_env = dict(env or {})
        self.user_count = users
        self.workdir = Path(tempfile.mkdtemp(prefix="livedash-bench-"))
        self.redis = None
        self.redis_port = None
        self.supervisor = None
        self.servers = []
        self.sessions = []
        self.keep_logs = keep_logs
        self.pushpin = None
        # One set of Pushpin ports and one signing key for the whole run, so the publisher
        # process keeps one GRIP_URL while each phase still gets a fresh Pushpin.
        self.pushpin_ports = PushpinPorts.free()
        self.pushpin_key = secrets.token_urlsafe(32)
        self.pushpin_runs = 0
        # bench.selected: the floor relays each stream only the events of its `?LABEL=`.
        self.floor_select_by = None

    # Lifecycle ------------------------------------------------------------

    def start(self):
        self.redis_port = free_port()
        self._redis_log = open(self.workdir / "redis.log", "wb")  # noqa: SIM115
        self.redis = start_redis(self.redis_port, logfile=self._redis_log)
        os.environ.update(bench_environment(self._create_database(), self.redis_url))
        os.environ.update(self.extra_env)
        import django

        django.setup()
        self._migrate()
        self.sessions = self._login_bench_users()
        self._prime_metrics_channel()
        self.supervisor = Supervisor()

    @property
    def redis_url(self):
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def stop(self):
        self.stop_servers()
        if self.redis is not None and self.redis.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.redis.pid, signal.SIGTERM)
            try:
                self.redis.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.redis.pid, signal.SIGKILL)
                self.redis.wait()
        self._drop_database()
        if not self.keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # Database and users -----------------------------------------------------

    def _create_database(self):
        """The DATABASE_URL of the bench's own database."""
        if not self.postgres_url:
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.database_name = f"livedash_bench_{os.getpid()}"
        with _postgres_admin(self.postgres_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database_name}"')
            admin.execute(f'CREATE DATABASE "{self.database_name}"')
        return urlunsplit(urlsplit(self.postgres_url)._replace(path=f"/{self.database_name}"))

    def _drop_database(self):
        if self.database_name is None:
            return
        from django.db import connections

        connections.close_all()
        with _postgres_admin(self.postgres_url) as admin:
            # FORCE: a server process killed mid-phase may leave its session behind.
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
        self.database_name = None

    def _migrate(self):
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)

    def _login_bench_users(self):
        """Users with `dashboard.view_metric`, each logged in once: their session cookies."""
        from django.conf import settings
        from django.contrib.auth.models import Permission, User
        from django.test import Client

        permission = Permission.objects.get(content_type__app_label="dashboard", codename="view_metric")
        cookies = []
        for index in range(self.user_count):
            # No password (hashing one costs a third of a second): the session comes from force_login.
            user = User.objects.create_user(f"bench-{index}", password=None)
            user.user_permissions.add(permission)
            client = Client()
            client.force_login(user)
            cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
        return cookies

    @property
    def grip_url(self):
        return self._plan_pushpin("plan").grip_url

    def _plan_pushpin(self, name):
        return Pushpin(self.workdir / name, ports=self.pushpin_ports, sig_key=self.pushpin_key)

    def _prime_metrics_channel(self):
        """One event before any client connects, as the collector's frames give every deployment.

        On a never-used channel the first event's id comes from the clock (see
        dashboard.storage) while a stream that opened before it started from 0,
        so Pushpin would see a gap on every connection at once and recover them all
        from the workers: a cost of an empty store, not of fan-out."""
        from dashboard.live import publish_metric

        publish_metric("bench-started", 0)

    def metrics_current_id_key(self):
        from dashboard.storage import current_id_key
        from dashboard.stream.channels import METRICS_CHANNEL

        return current_id_key(METRICS_CHANNEL)

    def pubsub_channel(self):
        from dashboard.storage import pubsub_channel

        return pubsub_channel()

    # Servers ----------------------------------------------------------------

    def start_servers(self, path):
        """Fresh server processes for `path`: two web workers (deploy/worker.py: uvicorn, or
        daphne for the `-daphne` paths), or two floor relays; for `pushpin`, two workers in
        GRIP mode behind a fresh Pushpin (`self.pushpin`); for `pushpin-floor`, one
        do-nothing GRIP origin (bench.pushpin_floor) behind it."""
        self.stop_servers()
        pushpin = None
        if path in PUSHPIN_PATHS:
            self.pushpin_runs += 1
            pushpin = self._plan_pushpin(f"pushpin-{self.pushpin_runs}")
        for index in range(1 if path == "pushpin-floor" else self.workers):
            port = free_port()
            log_path = self.workdir / f"{path}-{index}-{port}.log"
            log = open(log_path, "wb")  # noqa: SIM115
            if path == "floor":
                args = ["-m", "bench.floor", "--port", str(port), "--redis-url", self.redis_url]
                args += ["--pubsub-channel", self.pubsub_channel()]
                if self.floor_select_by:
                    args += ["--select-by", self.floor_select_by]
                process = self.supervisor.python(
                    f"floor-{index}", *args, stdout=log, stderr=subprocess.STDOUT
                )
            elif path == "pushpin-floor":
                args = ["-m", "bench.pushpin_floor", "--serve-origin", "--port", str(port)]
                args += ["--redis-url", self.redis_url, "--current-id-key", self.metrics_current_id_key()]
                process = self.supervisor.python("grip-origin", *args, stdout=log, stderr=subprocess.STDOUT)
            else:
                env = {"ASGI_SERVER": "daphne" if path in DAPHNE_PATHS else "uvicorn"}
                if pushpin:
                    env["GRIP_URL"] = pushpin.grip_url
                process = self.supervisor.worker(
                    f"worker-{index}", port, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            log.close()
            self.servers.append(Server(process, port, log_path))
        for server in self.servers:
            wait_for_port(server.port, process=server.process)
        if pushpin:
            with open(self.workdir / f"{pushpin.directory.name}.log", "wb") as log:
                workers = [f"127.0.0.1:{server.port}" for server in self.servers]
                self.pushpin = pushpin.start(self.supervisor, workers, stdout=log, stderr=subprocess.STDOUT)
        return self.servers

    def asgi_server(self):
        """The ASGI server the running web workers say they are on (their first log line), or None."""
        names = set()
        for server in self.servers:
            match = re.search(r"deploy\.worker: (\w+) on ", server.log_tail(400))
            if match:
                names.add(match.group(1))
        if len(names) > 1:
            raise RuntimeError(f"the workers of one phase run on different servers: {sorted(names)}")
        return names.pop() if names else None

    def stop_servers(self):
        if self.supervisor is not None:
            self.supervisor.stop()
        self.servers = []
        self.pushpin = None

    def dead_servers(self):
        dead = [s for s in self.servers if s.process.poll() is not None]
        if self.pushpin is not None and self.pushpin.process.poll() is not None:
            log_path = self.workdir / f"{self.pushpin.directory.name}.log"
            dead.append(Server(self.pushpin.process, self.pushpin.ports.http, log_path))
        return dead

    def tracebacks(self):
        """Server log lines that show an error, for the report."""
        found = []
        for server in self.servers:
            text = server.log_tail(400)
            if "Traceback" in text or " ERROR " in text:
                found.append(f"--- {server.log_path.name}\n{server.log_tail(30)}")
        return found

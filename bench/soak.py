"""`make soak`: the long run. Steady load on `make stack` for a set time, and what it did to
every process.

The stack is deploy.stack's (nginx in front of two web workers, plus the collector),
on a redis-server and a SQLite database of the soak's own (bench.stack.BenchStack),
so nothing touches the machine's Redis or database. For SOAK_MINUTES (default 30):

- SOAK_SSE viewers (default 1,000) on /events/ through nginx and SOAK_WS sockets
  (default 200) on /ws/, held by load processes of bench.clients;
- a metric pushed SOAK_PUSH_RATE times a second (publish_metric), a notification to
  everyone every SOAK_NOTIFY_EVERY seconds (notify), and a staff socket sending
  control commands (set_interval, snapshot, ping) every SOAK_CONTROL_EVERY seconds.

It reports each process's RSS and open files after the warm-up and at the end,
Redis' memory and keys, loss and duplicates (every viewer must get every pushed
value once, every socket every notification once), the control commands' answers,
livedash's own /metrics, and every error line in the logs. Targets: RSS growth
under 5% per worker after warm-up, Redis keys other than the event history flat,
0 lost, 0 duplicated, no error lines. The figures go to bench/results/soak-*.json.
"""

import json
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.clients import CONNECTED, RECEIVED, Target, load_process_main, stop_helper
from bench.limits import raise_open_files_limit
from bench.stack import BenchStack
from deploy.stack import start_stack
from deploy.supervisor import free_port

RESULTS = Path(__file__).resolve().parent / "results"
ERROR_LINE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|\[(error|crit|alert|emerg)\]")
RSS_TARGET = 0.05


def setting(name, default, kind=float):
    raw = os.environ.get(name, "").strip()
    try:
        return kind(raw) if raw else default
    except ValueError:
        sys.exit(f"{name} must be a number, got {raw!r}")


def log(message):
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Loaders:
    """Load processes (bench.clients), driven over pipes as bench.run drives them."""

    def __init__(self, count):
        context = multiprocessing.get_context("spawn")
        self.members = []
        for _ in range(count):
            parent, child = context.Pipe()
            progress = context.RawArray("q", 2)
            process = context.Process(target=load_process_main, args=(child, progress), daemon=True)
            process.start()
            self.members.append((process, parent, progress))

    def ask(self, commands, timeout=300):
        pipes = []
        for (_, pipe, _), command in zip(self.members, commands, strict=True):
            pipe.send(command)
            pipes.append(pipe)
        replies, deadline = {}, time.monotonic() + timeout
        while len(replies) < len(pipes):
            for pipe in multiprocessing.connection.wait([p for p in pipes if p not in replies], timeout=1):
                replies[pipe] = pipe.recv()
            if time.monotonic() > deadline:
                raise TimeoutError("load processes did not answer")
        return [replies[p] for p in pipes]

    def connected(self):
        return sum(progress[CONNECTED] for _, _, progress in self.members)

    def received(self):
        return sum(progress[RECEIVED] for _, _, progress in self.members)

    def stop(self):
        for process, pipe, _ in self.members:
            stop_helper(process, pipe)


class Publisher(threading.Thread):
    """Metric pushes, notifications and control commands at a steady pace until stopped."""

    def __init__(self, metric, push_rate, notify_every, control_every, base_url, staff_cookie):
        super().__init__(daemon=True)
        self.metric, self.push_rate = metric, push_rate
        self.notify_every, self.control_every = notify_every, control_every
        self.base_url, self.staff_cookie = base_url, staff_cookie
        self.pushed = self.notified = 0
        self.control = {"sent": 0, "answered": 0, "errors": 0}
        self.failures = []
        self.stopping = threading.Event()

    def run(self):
        from dashboard.live import publish_metric
        from notifications.services import notify

        with self.control_socket() as socket:
            self.steady(socket, publish_metric, notify)

    def steady(self, socket, publish_metric, notify):
        hello = json.loads(socket.recv(timeout=30))
        if hello.get("type") != "hello":
            raise RuntimeError(f"the control socket got {hello} first")
        started = time.monotonic()
        next_notify = next_control = started
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                publish_metric(self.metric, self.pushed, ts=time.time())
                self.pushed += 1
                if now >= next_notify:
                    notify(None, f"{self.metric} {self.notified}", body=str(time.time()))
                    self.notified += 1
                    next_notify += self.notify_every
                if now >= next_control:
                    self.send_controls(socket)
                    next_control += self.control_every
            except Exception as exc:  # reported, never silently lost
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            self.stopping.wait(max(0.0, started + self.pushed / self.push_rate - time.monotonic()))

    def control_socket(self):
        from websockets.sync.client import connect

        url = self.base_url.replace("http://", "ws://") + "/ws/dashboard/"
        return connect(
            url, additional_headers={"Origin": self.base_url, "Cookie": f"sessionid={self.staff_cookie}"}
        )

    def send_controls(self, socket):
        interval = 1 if self.control["sent"] % 2 else 2
        commands = [
            {"type": "set_interval", "seconds": interval},
            {"type": "snapshot"},
            {"type": "ping"},
        ]
        for index, command in enumerate(commands):
            command["id"] = f"c{self.control['sent']}-{index}"
            socket.send(json.dumps(command))
        self.control["sent"] += 1
        waiting = {c["id"] for c in commands}
        deadline = time.monotonic() + 10
        while waiting and time.monotonic() < deadline:
            message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") in waiting:
                waiting.discard(message["id"])
                kind = "errors" if message.get("type") == "error" else "answered"
                self.control[kind] += 1
        self.control["errors"] += len(waiting)


def process_figures(processes, redis_pid):
    """RSS (MiB) and open files of each stack process, its children included."""
    figures = {}
    for name, pid in [*((n, p.pid) for n, p in processes.items()), ("redis", redis_pid)]:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            figures[name] = None
            continue
        rss = fds = 0
        for member in family:
            try:
                rss += member.memory_info().rss
                fds += member.num_fds()
            except psutil.NoSuchProcess:
                pass
        figures[name] = {"rss_mib": round(rss / 2**20, 1), "fds": fds}
    return figures


def redis_figures(client, prefix):
    info = client.info("memory")
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    events = sum(1 for k in keys if k.startswith(f"{prefix}:events:"))
    return {
        "used_memory_mib": round(info["used_memory"] / 2**20, 1),
        "keys": len(keys),
        "event_keys": events,
        "other_keys": len(keys) - events,
    }


def error_lines(log_dirs):
    found = []
    for directory in log_dirs:
        for path in sorted(Path(directory).glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if ERROR_LINE.search(line):
                    found.append(f"{path.name}: {line[:300]}")
    return found


def scrape(base_url, token):
    import httpx

    response = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return {
        line.split(" ")[0]: float(line.split(" ")[-1])
        for line in response.text.splitlines()
        if line.startswith("livedash_")
    }


def main():
    minutes = setting("SOAK_MINUTES", 30.0)
    sse_count = setting("SOAK_SSE", 1000, int)
    ws_count = setting("SOAK_WS", 200, int)
    push_rate = setting("SOAK_PUSH_RATE", 5.0)
    notify_every = setting("SOAK_NOTIFY_EVERY", 5.0)
    control_every = setting("SOAK_CONTROL_EVERY", 5.0)
    duration = minutes * 60
    warm_up = min(120.0, max(30.0, duration * 0.1))
    raise_open_files_limit()

    bench = BenchStack(workers=2, users=20, keep_logs=True)
    bench.start()
    loaders = None
    try:
        from django.contrib.auth.models import Permission, User
        from django.test import Client

        from api.models import ApiToken
        from dashboard.redis import get_sync_client

        staff = User.objects.create_user("soak-staff", password=None, is_staff=True)
        staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_metric", "change_metric"]))
        client = Client()
        client.force_login(staff)
        staff_cookie = client.cookies["sessionid"].value
        scrape_token = ApiToken.create(f"soak-{secrets.token_hex(3)}", scrape=True)[1]

        log_dir = bench.workdir / "logs"
        log_dir.mkdir()
        stack = start_stack(
            bench.supervisor, port=free_port(), workdir=bench.workdir / "stack", log_dir=log_dir
        )
        log(f"stack on {stack.base_url}: {', '.join(stack.processes)}; logs in {log_dir}")

        metric = f"soak-{secrets.token_hex(3)}"
        ws_url = stack.base_url.replace("http://", "ws://") + "/ws/dashboard/"
        sse = [
            Target("sse", f"{stack.base_url}/events/?channel=metrics", bench.sessions[i % 20], stack.base_url)
            for i in range(sse_count)
        ]
        ws = [Target("ws", ws_url, bench.sessions[i % 20], stack.base_url) for i in range(ws_count)]
        loaders = Loaders(3)
        commands = [("connect", sse[0::2], metric), ("connect", sse[1::2], metric), ("connect", ws, metric)]
        outcomes = loaders.ask(commands)
        log(f"connected {loaders.connected()} of {sse_count + ws_count} clients: {outcomes}")

        publisher = Publisher(metric, push_rate, notify_every, control_every, stack.base_url, staff_cookie)
        started = time.monotonic()
        publisher.start()
        redis = get_sync_client()
        prefix = os.environ["REDIS_PREFIX"]

        while time.monotonic() - started < warm_up:
            time.sleep(1)
        start = {
            "processes": process_figures(stack.processes, bench.redis.pid),
            "redis": redis_figures(redis, prefix),
        }
        log(f"after the {warm_up:.0f}s warm-up: {start}")
        while time.monotonic() - started < duration:
            time.sleep(min(30, duration - (time.monotonic() - started)))
            dead = [name for name, p in stack.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"stack processes died: {dead}")
            log(
                f"{(time.monotonic() - started) / 60:.1f} min: {loaders.connected()} connected, "
                f"{loaders.received()} received, {publisher.pushed} pushed, {publisher.notified} notified"
            )
        end = {
            "processes": process_figures(stack.processes, bench.redis.pid),
            "redis": redis_figures(redis, prefix),
        }
        publisher.stopping.set()
        publisher.join(30)
        # Let the last values arrive: wait until nothing more comes for two seconds.
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 2:
            time.sleep(0.5)
            if loaders.received() != last:
                last, quiet_since = loaders.received(), time.monotonic()

        sse_a, sse_b, sockets = loaders.ask(
            [
                ("collect", range(publisher.pushed)),
                ("collect", range(publisher.pushed)),
                ("collect", range(publisher.notified)),
            ]
        )
        viewers = {
            key: sse_a[key] + sse_b[key]
            for key in ("clients", "deliveries", "duplicates", "lost", "clients_with_loss", "resets")
        }
        socket_result = {
            key: sockets[key] for key in ("clients", "deliveries", "duplicates", "lost", "clients_with_loss")
        }
        latencies = sorted(sse_a["latencies"] + sse_b["latencies"])
        growth = {}
        for name, figures in start["processes"].items():
            after = end["processes"].get(name)
            if figures and after:
                growth[name] = round((after["rss_mib"] - figures["rss_mib"]) / figures["rss_mib"], 4)
        errors = error_lines([log_dir])
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "minutes": minutes,
            "warm_up_seconds": warm_up,
            "load": {
                "sse": sse_count,
                "ws": ws_count,
                "push_rate": push_rate,
                "notify_every": notify_every,
                "control_every": control_every,
            },
            "published": {"metrics": publisher.pushed, "notifications": publisher.notified},
            "publisher_failures": publisher.failures[:20],
            "control": publisher.control,
            "viewers": viewers,
            "sockets": socket_result,
            "latency_ms": {
                "p50": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
                "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
            },
            "start": start,
            "end": end,
            "rss_growth": growth,
            "metrics_endpoint": scrape(stack.base_url, scrape_token),
            "error_lines": errors[:50],
            "error_line_count": len(errors),
        }
        workers = [name for name in growth if name.startswith("web")]
        result["verdict"] = {
            "rss_growth_under_5pc_per_worker": all(growth[name] < RSS_TARGET for name in workers),
            "other_redis_keys_flat": end["redis"]["other_keys"] <= start["redis"]["other_keys"] + 5,
            "nothing_lost_or_duplicated": not (
                viewers["lost"]
                or viewers["duplicates"]
                or socket_result["lost"]
                or socket_result["duplicates"]
            ),
            "no_error_lines": not errors,
            "control_all_answered": publisher.control["errors"] == 0,
        }
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "error_lines"}, indent=2))
        for line in errors[:20]:
            print("  ", line)
        log(f"written to {path}")
        return 0 if all(result["verdict"].values()) else 1
    finally:
        if loaders is not None:
            loaders.stop()
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())

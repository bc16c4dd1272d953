"""`python -m bench.fleet`: the SDK middleware's cost per request, and a fleet of agents
pushing to dashboards that each watch one host.

1. **Middleware overhead**: in a process of its own, Django's handler runs a trivial view
   with and without `livedash_client.django.LivedashMiddleware` (RequestFactory requests,
   the two handlers alternating in rounds, so drift on a noisy machine hits both); the
   figure is the p50 added per request, against the 50 µs target. The middleware's
   recorder pushes to a local sink every 5 s meanwhile, as it would in production.
2. **Fleet**: `--agents` simulated agents (200) each push `--series-per-agent` (10)
   host metrics as line protocol to `/api/v2/write` every `--interval` seconds (5), each
   with its own host token, at random phases, over two web workers; `--dashboards` (100)
   SSE streams each open `/events/?channel=metrics&match={host="agent-NNN"}`, the stream
   of one host's dashboard. Push to screen is the time from the agent's timestamp (taken
   as it sends) to the stream receiving the point; CPU per point is the servers' CPU over
   the pushing window divided by the points accepted. Every point of each watched host
   is counted, so loss and duplicates are exact.

   The floor phase is the same pushes into the same workers, with the streams held by
   the floor relay (bench.floor `--select-by host`) instead: it relays each stream its
   host's events and nothing else. Both phases run in the same run on fresh servers, so
   the ratios hold on a noisy machine.

    python -m bench.fleet            # 200 agents, 2,000 series, 100 dashboards, 60 s a phase
    python -m bench.fleet --quick    # a smoke run
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from bench import report
from bench.limits import raise_open_files_limit
from bench.measure import ServerProcesses, cpu_seconds_of, summarise_ms
from bench.profile import Profiler
from bench.run import RESULTS, interrupt, log
from bench.stack import BenchStack
from deploy.supervisor import free_port, wait_for_port

PATHS = ("floor", "sse")
# The host metrics an agent samples (livedash_agent.sampling), and a few more to make ten.
METRICS = (
    "cpu",
    "memory",
    "load_1m",
    "net_rx",
    "net_tx",
    "disk",
    "processes",
    "swap",
    "load_5m",
    "load_15m",
)
FULL = {"agents": 200, "dashboards": 100, "seconds": 60.0}
QUICK = {"agents": 20, "dashboards": 10, "seconds": 12.0}
OVERHEAD_TARGET_US = 50.0
CONNECT_TIMEOUT = 60.0
# After the last push, how long the streams may take to bring the last points.
DRAIN_SECONDS = 5.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, help="simulated agents: 200 (--quick: 20)")
    parser.add_argument(
        "--series-per-agent", type=int, default=len(METRICS), choices=range(1, len(METRICS) + 1)
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between an agent's pushes")
    parser.add_argument("--dashboards", type=int, help="open dashboards (SSE streams): 100 (--quick: 10)")
    parser.add_argument("--seconds", type=float, help="how long the agents push, per phase: 60 (--quick: 12)")
    parser.add_argument("--overhead-requests", type=int, default=4000, help="requests per handler and round")
    parser.add_argument("--overhead-rounds", type=int, default=10)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20 agents, 10 dashboards, 12 s a phase")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="record py-spy on the servers into DIR")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.overhead_requests, args.overhead_rounds = min(args.overhead_requests, 1000), 4
    if args.agents < 1 or args.dashboards < 1 or args.interval <= 0 or args.seconds < args.interval:
        parser.error("--agents and --dashboards must be positive, --seconds at least one --interval")
    return args


# ---- 1. the middleware's cost per request ------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    """What the recorder pushes to during the overhead run: every batch accepted."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def overhead_main(pipe, requests, rounds):
    """In a process of its own (its own minimal Django settings): per-request times of the
    trivial view with and without the middleware, in microseconds."""
    import django
    from django.conf import settings

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-fleet-overhead",  # noqa: S106 (a throwaway process's)
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="bench.trivial_app",
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        LIVEDASH_URL=f"http://127.0.0.1:{sink.server_address[1]}",
        LIVEDASH_TOKEN="bench",  # noqa: S106
        LIVEDASH_APP="bench",
        LIVEDASH_PUSH_INTERVAL=5,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.handlers.base import BaseHandler
    from django.test import RequestFactory, override_settings

    plain = BaseHandler()
    plain.load_middleware()
    with override_settings(MIDDLEWARE=["livedash_client.django.LivedashMiddleware"]):
        instrumented = BaseHandler()
        instrumented.load_middleware()
    factory = RequestFactory()
    times = {"without": [], "with": []}
    handlers = [("without", plain), ("with", instrumented)]
    clock = time.perf_counter_ns
    for round_ in range(rounds + 1):
        for name, handler in handlers if round_ % 2 else reversed(handlers):
            batch = [factory.get("/ping/") for _ in range(requests)]
            taken = []
            for request in batch:
                started = clock()
                response = handler.get_response(request)
                taken.append(clock() - started)
                assert response.status_code == 200
            if round_:  # round 0 warms both up (imports, URL resolver, the recorder's thread)
                times[name] += taken
    sink.shutdown()
    pipe.send({name: [ns / 1000 for ns in values] for name, values in times.items()})


def measure_overhead(args):
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=overhead_main, args=(child, args.overhead_requests, args.overhead_rounds)
    )
    process.start()
    times = parent.recv()
    process.join(10)
    without, with_ = sorted(times["without"]), sorted(times["with"])

    def summary(values):
        return {
            "p50": round(statistics.median(values), 2),
            "p99": round(values[int(len(values) * 0.99) - 1], 2),
            "mean": round(statistics.fmean(values), 2),
        }

    added = statistics.median(with_) - statistics.median(without)
    return {
        "requests_per_handler": len(without),
        "rounds": args.overhead_rounds,
        "without_us": summary(without),
        "with_us": summary(with_),
        "added_p50_us": round(added, 2),
        "added_mean_us": round(statistics.fmean(with_) - statistics.fmean(without), 2),
        "target_us": OVERHEAD_TARGET_US,
        "met": added < OVERHEAD_TARGET_US,
    }


# ---- 2. the fleet ------------------------------------------------------------------


def line_protocol(host, names, seq, ts_ns):
    return "\n".join(
        f"{name},host={host} value={seq + index / 100} {ts_ns}" for index, name in enumerate(names)
    )


async def push_as_agents(agents, names, interval, seconds):
    """Each of `agents` (host, write URL, token) pushes every `interval` s for `seconds`,
    starting at a random phase; returns, per host, the timestamps of the accepted pushes."""
    import aiohttp

    loop = asyncio.get_running_loop()
    accepted = {host: [] for host, _, _ in agents}
    refused, http_times = {}, []
    # A fresh connection per push, as livedash-agent's sender makes.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    end = loop.time() + seconds

    async def agent(session, host, url, token):
        next_at = loop.time() + random.uniform(0, interval)
        seq = 0
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            ts_ns = time.time_ns()
            body = line_protocol(host, names, seq, ts_ns)
            started = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    await response.read()
                    status = str(response.status)
            except Exception as exc:  # counted: a failed push is a lost point
                status = type(exc).__name__
            http_times.append(time.perf_counter() - started)
            if status == "204":
                accepted[host].append(ts_ns / 1e9)
            else:
                refused[status] = refused.get(status, 0) + 1
            seq += 1
            next_at += interval

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(agent(session, *spec) for spec in agents))
    return {"accepted": accepted, "refused": refused, "http": summarise_ms(http_times)}


class Dashboards:
    """SSE streams, each expecting the points of one host."""

    def __init__(self):
        self.streams = []
        self.tasks = []
        self.session = None

    async def connect(self, targets, timeout=CONNECT_TIMEOUT):
        import aiohttp

        from bench.clients import headers_for

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None),
        )
        loop = asyncio.get_running_loop()
        self.streams = []
        for target, host in targets:
            state = {"host": host, "seen": {}, "latencies": [], "foreign": 0, "error": None}
            state["connected"] = loop.create_future()
            self.streams.append(state)
            self.tasks.append(asyncio.create_task(self.read(target, headers_for(target), state)))
        done, _ = await asyncio.wait([s["connected"] for s in self.streams], timeout=timeout)
        errors = {}
        for state in self.streams:
            if state["error"]:
                errors[state["error"]] = errors.get(state["error"], 0) + 1
        return {"connected": len(done), "errors": errors}

    async def read(self, target, headers, state):
        from bench.clients import parse_sse_block

        try:
            async with self.session.get(target.url, headers=headers) as response:
                if response.status != 200:
                    raise ConnectionError(f"HTTP {response.status}")
                buffer = b""
                async for chunk in response.content.iter_any():
                    received_at = time.time()
                    if not state["connected"].done():
                        state["connected"].set_result(True)
                    *blocks, buffer = (buffer + chunk.replace(b"\r\n", b"\n")).split(b"\n\n")
                    for block in blocks:
                        event, _, data = parse_sse_block(block)
                        if event != "metric":
                            continue
                        point = json.loads(data)
                        if (point.get("labels") or {}).get("host") != state["host"]:
                            state["foreign"] += 1
                            continue
                        key = (point["name"], round(point["ts"], 3))
                        state["seen"][key] = state["seen"].get(key, 0) + 1
                        state["latencies"].append(received_at - point["ts"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state["error"] = f"{type(exc).__name__}: {exc}"[:200]

    async def collect(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.session.close()
        self.tasks = []
        return [
            {
                "host": s["host"],
                "seen": [[name, ts, count] for (name, ts), count in s["seen"].items()],
                "latencies": s["latencies"],
                "foreign": s["foreign"],
                "error": s["error"],
            }
            for s in self.streams
        ]


def helper_main(pipe):
    """A load process: runs the agents or the dashboards as the orchestrator asks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files_limit()

    async def serve():
        dashboards = Dashboards()
        loop = asyncio.get_running_loop()
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "quit":
                pipe.send({"ok": True})
                return
            if command == "agents":
                pipe.send(await push_as_agents(*args))
            elif command == "connect":
                pipe.send(await dashboards.connect(*args))
            elif command == "collect":
                pipe.send(await dashboards.collect())

    asyncio.run(serve())


class FleetBench:
    def __init__(self, args, stack):
        self.args = args
        self.stack = stack
        self.hosts = [f"agent-{index:03d}" for index in range(args.agents)]
        self.names = METRICS[: args.series_per_agent]
        self.tokens = {}
        context = multiprocessing.get_context("spawn")
        self.helpers = {}
        for role in ("agents", "dashboards"):
            parent, child = context.Pipe()
            process = context.Process(target=helper_main, args=(child,), daemon=True, name=f"fleet-{role}")
            process.start()
            self.helpers[role] = (process, parent)

    def make_tokens(self):
        """One host token per agent, as enrollment gives each its own."""
        from api.models import ApiToken

        for host in self.hosts:
            self.tokens[host] = ApiToken.create(f"bench-{host}", metric_patterns=["*"], host=host)[1]

    def ask(self, role, *command, timeout=None):
        process, pipe = self.helpers[role]
        pipe.send(command)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pipe.poll(0.5):
            if not process.is_alive():
                raise RuntimeError(f"the {role} process exited with {process.exitcode}")
            if deadline and time.monotonic() > deadline:
                raise RuntimeError(f"the {role} process did not answer {command[0]!r} in time")
        return pipe.recv()

    def stop(self):
        for process, pipe in self.helpers.values():
            if process.is_alive():
                try:
                    pipe.send(("quit",))
                    pipe.poll(10) and pipe.recv()
                except (OSError, EOFError):
                    pass
                process.join(5)
            if process.is_alive():
                process.terminate()

    def watched(self):
        """The host each dashboard watches: spread over the fleet."""
        step = max(1, len(self.hosts) // self.args.dashboards)
        return [self.hosts[(index * step) % len(self.hosts)] for index in range(self.args.dashboards)]

    def start_relays(self):
        relays = []
        for index in range(self.stack.workers):
            port = free_port()
            log_path = self.stack.workdir / f"floor-relay-{index}-{port}.log"
            with open(log_path, "wb") as log_file:
                args = ["-m", "bench.floor", "--port", str(port), "--redis-url", self.stack.redis_url]
                args += ["--pubsub-channel", self.stack.pubsub_channel(), "--select-by", "host"]
                process = self.stack.supervisor.python(
                    f"floor-relay-{index}", *args, stdout=log_file, stderr=subprocess.STDOUT
                )
            wait_for_port(port, process=process)
            relays.append((process, f"http://127.0.0.1:{port}"))
        return relays

    def warm_up(self, workers):
        """A push to each worker first, so its first-request imports are not a fleet point's latency."""
        host = self.hosts[0]
        for base in workers:
            body = line_protocol(host, self.names[:1], 0, time.time_ns()).encode()
            request = urllib.request.Request(  # noqa: S310 (the bench's own worker)
                f"{base}/api/v2/write?precision=ns",
                data=body,
                headers={"Authorization": f"Bearer {self.tokens[host]}"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the bench's own worker)
                response.read()

    def run_phase(self, path):
        from bench.clients import Target

        log(
            f"[{path}] starting {self.stack.workers} fresh web workers"
            + (" and floor relays" if path == "floor" else "")
        )
        servers = self.stack.start_servers("sse")
        workers = [server.url for server in servers]
        pids = [server.pid for server in servers]
        relays = self.start_relays() if path == "floor" else []
        pids += [process.pid for process, _ in relays]
        self.warm_up(workers)
        watched = self.watched()
        targets = []
        for index, host in enumerate(watched):
            if path == "floor":
                base = relays[index % len(relays)][1]
                targets.append((Target("sse", f"{base}/events/?host={host}", None, base), host))
            else:
                base = workers[index % len(workers)]
                selector = quote('{host="%s"}' % host)  # noqa: UP031 (quotes inside an f-string need 3.12)
                url = f"{base}/events/?channel=metrics&match={selector}"
                cookie = self.stack.sessions[index % len(self.stack.sessions)]
                targets.append((Target("sse", url, cookie, base), host))
        log(f"[{path}] opening {len(targets)} dashboards")
        connected = self.ask("dashboards", "connect", targets, timeout=CONNECT_TIMEOUT + 30)
        log(f"    {connected['connected']}/{len(targets)} open")
        agents = [
            (host, f"{workers[index % len(workers)]}/api/v2/write?precision=ns", self.tokens[host])
            for index, host in enumerate(self.hosts)
        ]
        processes = ServerProcesses(pids)
        profiler = Profiler(self.args.profile) if self.args.profile else None
        if profiler:
            profiler.start(f"fleet-{path}", [server.pid for server in servers])
        cpu_before, redis_before = processes.cpu_seconds(), cpu_seconds_of(self.stack.redis.pid)
        log(
            f"[{path}] {len(agents)} agents pushing {len(self.names)} series every {self.args.interval:g} s "
            f"for {self.args.seconds:g} s"
        )
        pushed = self.ask("agents", "agents", agents, self.names, self.args.interval, self.args.seconds)
        time.sleep(DRAIN_SECONDS)
        profile = profiler.stop() if profiler else None
        cpu_s = processes.cpu_seconds() - cpu_before
        redis_cpu_s = cpu_seconds_of(self.stack.redis.pid) - redis_before
        streams = self.ask("dashboards", "collect", timeout=60)
        errors = self.stack.tracebacks()
        self.stack.stop_servers()
        result = self.phase_result(path, connected, pushed, streams, cpu_s, redis_cpu_s, errors)
        if profile:
            result["workers_profile"] = profile
        return result

    def phase_result(self, path, connected, pushed, streams, cpu_s, redis_cpu_s, errors):
        accepted = pushed["accepted"]
        points = sum(len(stamps) for stamps in accepted.values()) * len(self.names)
        expected = delivered = duplicates = lost = foreign = 0
        latencies = []
        for stream in streams:
            wanted = {(name, round(ts, 3)) for ts in accepted[stream["host"]] for name in self.names}
            seen = {(name, ts): count for name, ts, count in stream["seen"]}
            expected += len(wanted)
            delivered += sum(1 for key in seen if key in wanted)
            duplicates += sum(count - 1 for count in seen.values() if count > 1)
            lost += len(wanted - set(seen))
            foreign += stream["foreign"]
            latencies += stream["latencies"]
        seconds = self.args.seconds
        return {
            "path": path,
            "dashboards": len(streams),
            "connected": connected["connected"],
            "connect_errors": connected["errors"],
            "agents": len(accepted),
            "series": len(accepted) * len(self.names),
            "points_accepted": points,
            "points_per_s": round(points / seconds, 1),
            "pushes_refused": pushed["refused"],
            "push_http_ms": pushed["http"],
            "expected_deliveries": expected,
            "deliveries": delivered,
            "lost": lost,
            "duplicates": duplicates,
            "foreign": foreign,
            "push_to_screen_ms": summarise_ms(latencies),
            "cpu": {
                "servers_s": round(cpu_s, 3),
                "redis_s": round(redis_cpu_s, 3),
                "servers_percent_of_a_core": round(100 * cpu_s / (seconds + DRAIN_SECONDS), 1),
                "ms_per_point": round(1000 * cpu_s / points, 4) if points else None,
                "ms_per_1000_deliveries": round(1e6 * cpu_s / delivered, 2) if delivered else None,
            },
            "server_errors": errors,
        }


def ratios(phases):
    by_path = {phase["path"]: phase for phase in phases}
    floor, sse = by_path.get("floor"), by_path.get("sse")
    if not (floor and sse):
        return {}

    def ratio(read):
        a, b = read(sse), read(floor)
        return round(a / b, 2) if a and b else None

    return {
        "p99_push_to_screen": ratio(lambda p: p["push_to_screen_ms"]["p99"]),
        "cpu_per_point": ratio(lambda p: p["cpu"]["ms_per_point"]),
    }


def main(argv=None):
    args = parse_args(argv)
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, interrupt)
    started_at, started = datetime.now(UTC), time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = {
        "load_average_at_start": load_at_start,
        "started_at": started_at.isoformat(timespec="seconds"),
        "settings": {
            "agents": args.agents,
            "series_per_agent": args.series_per_agent,
            "interval_s": args.interval,
            "dashboards": args.dashboards,
            "seconds": args.seconds,
        },
    }
    if not args.skip_overhead:
        log(
            f"middleware overhead: {args.overhead_rounds} rounds of "
            f"{args.overhead_requests} requests per handler"
        )
        overhead = results["middleware_overhead"] = measure_overhead(args)
        log(
            f"    trivial view p50 {overhead['without_us']['p50']} µs, with LivedashMiddleware "
            f"{overhead['with_us']['p50']} µs: {overhead['added_p50_us']} µs added "
            f"(target under {OVERHEAD_TARGET_US:g} µs: {'met' if overhead['met'] else 'MISSED'})"
        )
    phases = []
    if not args.skip_fleet:
        stack = BenchStack(users=20, keep_logs=args.keep_logs)
        bench = None
        try:
            log(
                f"bench.fleet: {args.agents} agents × {args.series_per_agent} series, "
                f"{args.dashboards} dashboards"
            )
            stack.start()
            bench = FleetBench(args, stack)
            bench.make_tokens()
            for path in PATHS:
                phases.append(bench.run_phase(path))
        except KeyboardInterrupt:
            log("interrupted: stopping everything the bench started")
            return 130
        finally:
            if bench is not None:
                bench.stop()
            stack.stop()
        results["settings"]["workers"] = stack.workers
    results["phases"] = phases
    results["ratios_to_floor"] = ratios(phases)
    results["machine"] = report.machine()
    results["duration_s"] = round(time.monotonic() - started, 1)
    path = report.save(results, args.output, "fleet", started_at)
    for phase in phases:
        log(
            f"{phase['path']:>5}: {phase['connected']}/{phase['dashboards']} dashboards, "
            f"{phase['points_accepted']:,} points ({phase['points_per_s']}/s), "
            f"{phase['deliveries']:,}/{phase['expected_deliveries']:,} delivered, lost {phase['lost']}, "
            f"duplicates {phase['duplicates']}, push to screen p99 {phase['push_to_screen_ms']['p99']} ms, "
            f"{phase['cpu']['ms_per_point']} CPU ms per point"
        )
    if phases:
        log(f"ratios to the floor: {results['ratios_to_floor']}")
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench`: run every phase, then write the results JSON, the plot and the summary.

A phase is one path (the floor relay, the product's SSE, the product's
WebSocket) at one number of clients, on freshly started servers:

The `pushpin` path is the product's SSE through Pushpin (GRIP): the workers only
authorise connects and publish, so its memory and delivery CPU are Pushpin's
processes', and the workers' CPU is reported per connect and per published event.

1. warm up (one client per server, so first-request imports are not charged to connections),
2. connect every client at once and time it; read memory and threads,
3. publish `--events` events at `--rate` per second and wait until every client
   has them (or delivery stalls); read the servers' CPU over that window,
4. WebSocket only: ping round trips,
5. drop every client at once and reconnect them all (SSE resumes with Last-Event-ID) and time it.
"""

import argparse
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.clients import CONNECTED, PACED_CONCURRENCY, RECEIVED, Target, load_process_main, stop_helper
from bench.limits import raise_open_files_limit
from bench.measure import RedisCalls, ServerProcesses, calls_between, cdf_points, cpu_seconds_of, summarise_ms
from bench.profile import Profiler
from bench.publisher import PROGRESS_PUBLISHED, publisher_main
from bench.stack import FLOOR_PATHS, PATHS, PUSHPIN_PATHS, BenchStack

WS_PATHS = ("ws", "ws-daphne")
# The --large sizes: the floor and direct SSE on the default server.
LARGE_PATHS = ("floor", "sse")

RESULTS = Path(__file__).resolve().parent / "results"

# How each path is fed: the floor and SSE read what `publish_metric` publishes; the
# WebSocket gets the same events through the product's dashboard-group broadcast
# (see bench.publisher.dashboard_broadcaster for why).
PUBLISH_MODE = {
    "floor": "publish_metric",
    "sse": "publish_metric",
    "sse-daphne": "publish_metric",
    "ws": "dashboard_broadcast",
    "ws-daphne": "dashboard_broadcast",
    "pushpin-floor": "publish_metric",
    "pushpin": "publish_metric",
}

STALL_SECONDS = 10.0
WARM_UP_TIMEOUT = 20.0
DRAIN_LIMIT_SECONDS = 120.0
PROGRESS_EVERY = 1.0


def size_list(text):
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return sizes


def path_list(text):
    paths = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown or not paths:
        raise argparse.ArgumentTypeError(f"paths are {', '.join(PATHS)}; got {text!r}")
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fan-out latency, connection cost, and SSE against WebSocket, side by side.",
    )
    parser.add_argument(
        "--clients", type=size_list, default=[1000, 3000], help="SSE (and floor) client counts"
    )
    parser.add_argument("--ws-clients", type=size_list, help="WebSocket client counts (default: --clients)")
    parser.add_argument(
        "--large",
        type=size_list,
        default=[10000],
        help="client counts run for the floor and direct SSE on the default server only",
    )
    parser.add_argument("--no-large", action="store_true", help="skip the --large sizes")
    parser.add_argument("--events", type=int, default=50, help="events published per phase")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument(
        "--paths", type=path_list, default=list(PATHS), help=f"which of {','.join(PATHS)} to run"
    )
    parser.add_argument("--load-procs", type=int, default=0, help="load-generator processes (0: automatic)")
    parser.add_argument("--users", type=int, default=20, help="bench users (clients share their sessions)")
    parser.add_argument(
        "--quick", action="store_true", help="100 clients, 20 events: a smoke run in well under a minute"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for the results JSON and PNG")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="record py-spy on the web workers into DIR"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary folder with server logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.events = [100], 20
    if args.quick or args.no_large:
        args.large = []
    args.ws_clients = args.ws_clients or args.clients
    if args.events < 1 or args.rate <= 0:
        parser.error("--events must be at least 1 and --rate positive")
    return args


STARTED = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


class Bench:
    # What each client gets of each published event (bench.selected: a share of a batch).
    per_client = 1

    def __init__(self, args, stack):
        self.args = args
        self.stack = stack
        self.context = multiprocessing.get_context("spawn")
        self.loaders = []
        self.publisher = None
        # The Pushpin path's publisher has GRIP_URL set, so publish_metric also publishes to Pushpin.
        self.grip_publisher = None
        self.profiler = Profiler(args.profile) if args.profile else None
        self.last_load_cpu_s = 0.0
        self.redis_calls = None

    # Helper processes ------------------------------------------------------

    def start_helpers(self, load_procs, grip_url=None):
        for _ in range(load_procs):
            parent, child = self.context.Pipe()
            progress = self.context.RawArray("q", 2)
            process = self.context.Process(target=load_process_main, args=(child, progress), daemon=True)
            process.start()
            self.loaders.append((process, parent, progress))
        self.publisher = self.start_publisher()
        if grip_url:
            self.grip_publisher = self.start_publisher({"GRIP_URL": grip_url})

    def start_publisher(self, env=None):
        parent, child = self.context.Pipe()
        progress = self.context.RawArray("q", 1)
        process = self.context.Process(target=publisher_main, args=(child, progress, env), daemon=True)
        process.start()
        return process, parent, progress

    def publishers(self):
        return [p for p in (self.publisher, self.grip_publisher) if p is not None]

    def stop_helpers(self, graceful=True):
        """Ask each helper to quit (it closes its clients); terminate any that is busy or stuck."""
        for process, pipe, _ in [*self.loaders, *self.publishers()]:
            stop_helper(process, pipe, graceful)

    def connected(self):
        return sum(progress[CONNECTED] for _, _, progress in self.loaders)

    def received(self):
        return sum(progress[RECEIVED] for _, _, progress in self.loaders)

    def ask(self, commands, describe):
        """Send one command per load process and wait for all replies, showing progress."""
        pipes = []
        for (_, pipe, _), command in zip(self.loaders, commands, strict=True):
            if command is not None:
                pipe.send(command)
                pipes.append(pipe)
        return self.wait_for(pipes, describe)

    def wait_for(self, pipes, describe):
        replies = {}
        pending = list(pipes)
        last_progress = time.monotonic()
        while pending:
            for pipe in multiprocessing.connection.wait(pending, timeout=0.2):
                replies[pipe] = pipe.recv()
                pending.remove(pipe)
            self.check_alive()
            if time.monotonic() - last_progress >= PROGRESS_EVERY:
                log(f"    {describe()}")
                last_progress = time.monotonic()
        return [replies[p] for p in pipes]

    def check_alive(self):
        for process, _, _ in [*self.loaders, *self.publishers()]:
            if not process.is_alive():
                raise RuntimeError(f"a bench helper process ({process.name}) exited with {process.exitcode}")
        dead = self.stack.dead_servers()
        if dead:
            tails = "\n".join(s.log_tail() for s in dead)
            raise RuntimeError(f"server {dead[0].url} exited with {dead[0].process.returncode}:\n{tails}")

    # Phases ------------------------------------------------------------------

    def targets(self, path, servers, count):
        kind = "ws" if path in WS_PATHS else "sse"
        sessions = self.stack.sessions
        # Through Pushpin every client goes to the edge; Pushpin picks the worker.
        base_urls = [self.stack.pushpin.url] if path in PUSHPIN_PATHS else [s.url for s in servers]
        result = []
        for index in range(count):
            base = base_urls[index % len(base_urls)]
            if kind == "ws":
                url = base.replace("http://", "ws://") + "/ws/dashboard/"
            else:
                url = base + "/events/?channel=metrics"
            cookie = None if path in FLOOR_PATHS else sessions[index % len(sessions)]
            result.append(Target(kind, url, cookie, base))
        return result

    def split(self, targets):
        count = len(self.loaders)
        return [targets[index::count] for index in range(count)]

    def warm_up(self, path, servers):
        targets = self.targets(path, servers, len(servers))
        quick = {"paced": False, "timeout": WARM_UP_TIMEOUT}
        commands = [("connect", part, "warm-up", quick) if part else None for part in self.split(targets)]
        replies = self.ask(commands, lambda: "warming up")
        self.ask([("disconnect",) if c else None for c in commands], lambda: "warming up")
        if any(r["failed"] for r in replies):
            errors = merge_counts(r["errors"] for r in replies)
            raise RuntimeError(f"{path}: warm-up clients could not connect: {errors}")

    def run_phase(self, path, count):
        log(f"[{path} × {count}] starting {self.stack.workers} fresh servers")
        servers = self.stack.start_servers(path)
        workers = ServerProcesses([s.pid for s in servers])
        # What holds the connections: the servers themselves, or Pushpin (its runner and services).
        processes = ServerProcesses([self.stack.pushpin.process.pid]) if path in PUSHPIN_PATHS else workers
        self.warm_up(path, servers)
        asgi_server = self.stack.asgi_server()
        time.sleep(0.5)
        before = processes.snapshot()
        workers_before = workers.cpu_seconds()
        # Redis commands per connect and per event, for the capacity model (bench.capacity).
        self.redis_calls = self.redis_calls or RedisCalls(self.stack.redis_url)
        calls_at_start = self.redis_calls.reading()

        metric = f"bench-{path}-{count}-{secrets.token_hex(3)}"
        targets = self.targets(path, servers, count)
        log(f"[{path} × {count}] connecting {count} clients at once")
        profiles = {}
        self.start_profile(path, count, "connect", servers)
        replies = self.ask(
            [("connect", part, metric) for part in self.split(targets)],
            lambda: f"connected {self.connected()}/{count}",
        )
        storm = connect_outcome(replies)
        log(f"    {storm['connected']}/{count} connected at once in {storm['elapsed']:.2f}s")
        paced = connect_outcome([r["paced"] for r in replies if "paced" in r])
        if paced["connected"] or paced["failed"]:
            pace = f"{PACED_CONCURRENCY} at a time per load process"
            log(f"    then {paced['connected']} more, {pace}, in {paced['elapsed']:.2f}s")
        connected = storm["connected"] + paced["connected"]
        profiles["connect"] = self.stop_profile()
        time.sleep(1.0)
        after = processes.snapshot()
        workers_connect_s = workers.cpu_seconds() - workers_before
        calls_connected = self.redis_calls.reading()

        self.start_profile(path, count, "publish", servers)
        workers_before = workers.cpu_seconds()
        publish, peak, cpu_s, redis_cpu_s, drain_s = self.publish_phase(
            path, count, metric, processes, connected
        )
        workers_publish_s = workers.cpu_seconds() - workers_before
        calls_published = self.redis_calls.reading()
        profiles["publish"] = self.stop_profile()
        pings = self.ping_phase() if path in WS_PATHS else None
        collect = self.collect_command(publish["published"])
        stats = self.ask([collect] * len(self.loaders), lambda: "collecting")
        log(f"[{path} × {count}] dropping every client and reconnecting them all at once")
        reconnect = connect_outcome(
            self.ask([("reconnect",)] * len(self.loaders), lambda: f"reconnected {self.connected()}/{count}")
        )
        log(f"    {reconnect['connected']}/{count} reconnected in {reconnect['elapsed']:.2f}s")
        self.ask([("disconnect",)] * len(self.loaders), lambda: "disconnecting")
        server_errors = self.stack.tracebacks()
        self.stack.stop_servers()
        return phase_result(
            path=path,
            count=count,
            server=asgi_server,
            connected=connected,
            storm=storm,
            paced=paced,
            reconnect=reconnect,
            before=before,
            after=after,
            peak=peak,
            publish=publish,
            stats=stats,
            cpu_s=cpu_s,
            redis_cpu_s=redis_cpu_s,
            drain_s=drain_s,
            pings=pings,
            server_errors=server_errors,
            profiles=profiles,
            load_cpu_s=self.last_load_cpu_s,
            workers_cpu={"connect_s": workers_connect_s, "publish_s": workers_publish_s},
            per_client=self.per_client,
            redis_calls=redis_calls_result(
                calls_between(calls_at_start, calls_connected),
                calls_between(calls_connected, calls_published),
                connected,
                publish["published"],
            ),
        )

    def collect_command(self, published):
        """What each load process is asked, after the publish: every client expects each seq."""
        return ("collect", range(published))

    def publish_command(self, path, metric, events, rate):
        return ("publish", PUBLISH_MODE[path], metric, events, rate)

    def load_cpu_seconds(self):
        return sum(cpu_seconds_of(process.pid) for process, _, _ in self.loaders)

    def start_profile(self, path, count, stage, servers):
        if self.profiler and path not in FLOOR_PATHS:
            self.profiler.start(f"{path}-{count}-{stage}", [s.pid for s in servers])

    def stop_profile(self):
        return self.profiler.stop() if self.profiler and self.profiler.recorders else None

    def publish_phase(self, path, count, metric, processes, connected):
        _, pipe, progress = self.grip_publisher if path in PUSHPIN_PATHS else self.publisher
        events, rate = self.args.events, self.args.rate
        expected = connected * events * self.per_client
        received_before = self.received()
        log(f"[{path} × {count}] publishing {events} events at {rate:g}/s to {connected} clients")
        cpu_before, redis_before = processes.cpu_seconds(), cpu_seconds_of(self.stack.redis.pid)
        load_before = self.load_cpu_seconds()
        started = time.monotonic()
        pipe.send(self.publish_command(path, metric, events, rate))
        peak = processes.snapshot()

        def describe():
            return (
                f"published {progress[PROGRESS_PUBLISHED]}/{events}, "
                f"delivered {self.received() - received_before:,}/{expected:,}"
            )

        (publish,) = self.wait_for([pipe], describe)
        expected = connected * publish["published"] * self.per_client
        last_count, last_change = self.received(), time.monotonic()
        while self.received() - received_before < expected:
            now = time.monotonic()
            if now - last_change > STALL_SECONDS or now - started > DRAIN_LIMIT_SECONDS:
                log(f"    delivery stalled: {describe()}")
                break
            if self.received() != last_count:
                last_count, last_change = self.received(), now
            time.sleep(0.1)
            peak = max_snapshot(peak, processes.snapshot())
        drain_s = time.monotonic() - started
        cpu_s = processes.cpu_seconds() - cpu_before
        redis_cpu_s = cpu_seconds_of(self.stack.redis.pid) - redis_before
        self.last_load_cpu_s = self.load_cpu_seconds() - load_before
        log(f"    {describe()} in {drain_s:.1f}s")
        if publish["errors"]:
            log(f"    publish errors: {publish['errors']}")
        return publish, peak, cpu_s, redis_cpu_s, drain_s

    def ping_phase(self):
        replies = self.ask([("ping", 2, 1.0)] * len(self.loaders), lambda: "pinging")
        rtts = [rtt for reply in replies for rtt in reply["rtts"]]
        return {**summarise_ms(rtts), "unanswered": sum(r["unanswered"] for r in replies)}


def connect_outcome(replies):
    """One connect (or reconnect) over every load process: they start together, so the time is the longest."""
    return {
        "connected": sum(r["connected"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "elapsed": max((r["elapsed"] for r in replies), default=0.0),
        "errors": merge_counts(r["errors"] for r in replies),
    }


def merge_counts(dicts):
    merged = {}
    for counts in dicts:
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def max_snapshot(a, b):
    return [
        {"pid": x["pid"], "rss": max(x["rss"], y["rss"]), "threads": max(x["threads"], y["threads"])}
        for x, y in zip(a, b, strict=True)
    ]


def phase_result(*, path, count, connected, before, after, peak, publish, stats, cpu_s, pings, **rest):
    latencies = [value for reply in stats for value in reply.pop("latencies")]
    ended = merge_counts(reply.pop("ended") for reply in stats)
    first_missing = merge_counts(reply.pop("first_missing_seq") for reply in stats)
    totals = merge_counts(stats)
    deliveries = totals.get("deliveries", 0)
    memory_delta = sum(a["rss"] - b["rss"] for a, b in zip(after, before, strict=True))
    return {
        "path": path,
        "clients": count,
        # The web workers' ASGI server (None for the floors, which are not the product).
        "server": rest["server"],
        "connected": connected,
        # All clients at once, as after a deploy or a network blip: how many got in, how fast.
        "connected_at_once": rest["storm"]["connected"],
        "connect_s": round(rest["storm"]["elapsed"], 3),
        "connect_errors": rest["storm"]["errors"],
        # Clients the storm left out, connected PACED_CONCURRENCY at a time per load process.
        "connected_paced": rest["paced"]["connected"],
        "paced_connect_s": round(rest["paced"]["elapsed"], 3),
        "paced_connect_errors": rest["paced"]["errors"],
        "reconnected": rest["reconnect"]["connected"],
        "reconnect_s": round(rest["reconnect"]["elapsed"], 3),
        "reconnect_errors": rest["reconnect"]["errors"],
        "events_published": publish["published"],
        "publish_errors": publish["errors"],
        "deliveries": deliveries,
        "expected_deliveries": connected * publish["published"] * rest["per_client"],
        "lost": totals.get("lost", 0),
        "duplicates": totals.get("duplicates", 0),
        "clients_with_loss": totals.get("clients_with_loss", 0),
        "clients_stopped": totals.get("clients_stopped", 0),
        "first_missing_seq": dict(sorted(first_missing.items())),
        "stream_resets": totals.get("resets", 0),
        "streams_ended_before_the_end": ended,
        "latency_ms": summarise_ms(latencies),
        "latency_cdf": cdf_points(latencies),
        "drain_s": round(rest["drain_s"], 3),
        "memory": {
            "servers": [
                {
                    "pid": b["pid"],
                    "rss_before_kb": b["rss"] // 1024,
                    "rss_connected_kb": a["rss"] // 1024,
                    "rss_peak_kb": p["rss"] // 1024,
                    "threads_before": b["threads"],
                    "threads_connected": a["threads"],
                    "threads_peak": p["threads"],
                }
                for b, a, p in zip(before, after, peak, strict=True)
            ],
            "per_connection_kb": round(memory_delta / 1024 / connected, 2) if connected else None,
        },
        "cpu": {
            "server_ms": round(cpu_s * 1000, 1),
            "redis_ms": round(rest["redis_cpu_s"] * 1000, 1),
            # The clients share the machine: when they are busy, latency includes their queueing.
            "load_generators_ms": round(rest["load_cpu_s"] * 1000, 1),
            "ms_per_1000_deliveries": round(cpu_s * 1000 / (deliveries / 1000), 2) if deliveries else None,
            # The web workers, for every path (for pushpin they only authorise and publish, so
            # "server" above is Pushpin): per new connection, and per event published.
            "workers_connect_ms_per_connection": _per(rest["workers_cpu"]["connect_s"] * 1000, connected),
            "workers_ms_per_event": _per(rest["workers_cpu"]["publish_s"] * 1000, publish["published"]),
        },
        "ping_ms": pings,
        "redis_calls": rest["redis_calls"],
        "server_errors": rest["server_errors"],
        **({"profile": rest["profiles"]} if any(rest["profiles"].values()) else {}),
    }


def redis_calls_result(connect, publish, connected, published):
    """The Redis commands of the connect storm and of the publish window, by command and
    per connection / per event (what a deployment's Redis must serve per viewer and event)."""
    return {
        "connect": connect,
        "publish": publish,
        "per_connection": _per(sum(connect.values()), connected),
        "per_event": _per(sum(publish.values()), published),
    }


def _per(total, count):
    return round(total / count, 3) if count else None


def interrupt(signum, frame):
    # SIGTERM stops the bench the way Ctrl-C does: through the cleanup in main().
    raise KeyboardInterrupt


def automatic_load_procs(largest):
    # One loop reads about 500 streams at 10 events/s with time to spare; more processes than
    # cores only adds scheduling noise on a small machine.
    return max(1, min(4, multiprocessing.cpu_count(), -(-largest // 500)))


def main(argv=None):
    args = parse_args(argv)
    largest = max(args.clients + args.ws_clients + args.large)
    descriptors = raise_open_files_limit()
    if descriptors < largest * 2 + 200:
        log(f"warning: the open-files limit is {descriptors}; {largest} clients need more")
    signal.signal(signal.SIGTERM, interrupt)
    stack = BenchStack(users=args.users, keep_logs=args.keep_logs)
    bench = Bench(args, stack)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    phases = []
    interrupted = False
    try:
        log(f"bench: own Redis and SQLite in {stack.workdir}; migrating, logging in {args.users} users")
        stack.start()
        grip_url = stack.grip_url if set(PUSHPIN_PATHS) & set(args.paths) else None
        bench.start_helpers(args.load_procs or automatic_load_procs(largest), grip_url=grip_url)
        for path in args.paths:
            for count in args.ws_clients if path in WS_PATHS else args.clients:
                phases.append(bench.run_phase(path, count))
        for path in [p for p in LARGE_PATHS if p in args.paths]:
            for count in args.large:
                phases.append(bench.run_phase(path, count))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything the bench started")
        return 130
    finally:
        bench.stop_helpers(graceful=not interrupted)
        if bench.redis_calls:
            bench.redis_calls.close()
        stack.stop()
        if args.keep_logs:
            log(f"server logs kept in {stack.workdir}")
    results = report.build(args, phases, started_at, time.monotonic() - started, load_at_start)
    json_path, png_path = report.write(results, args.output, plot=not args.no_plot)
    print(report.summary(results))
    log(f"results: {json_path}" + (f"\nplot: {png_path}" if png_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

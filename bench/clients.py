"""Load-generator processes: many SSE or WebSocket clients on one asyncio loop each.

The orchestrator talks to each process over a multiprocessing pipe with small
commands (connect, ping, reconnect, collect, disconnect, quit) and reads live
progress from a shared array, so the processes never share a GIL with each
other or with the servers they measure.

Every client records, per `metric` event of this phase's metric name, the
sequence number (the value) and the latency (receive time minus the `ts` the
publisher put in the event), so loss and duplicates are counted by sequence
and latency needs no clock other than this machine's.
"""

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field

import aiohttp

CONNECTED, RECEIVED = 0, 1
CONNECT_TIMEOUT = 30.0
# A server that takes the connection but never answers counts as a failed attempt.
HANDSHAKE_TIMEOUT = 15.0
# Retry delays after a failed connection (seconds, doubled per failure, with jitter).
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
# Clients the storm left out connect this many at a time per load process.
PACED_CONCURRENCY = 10
PACED_TIMEOUT = 120.0


@dataclass
class Target:
    kind: str  # "sse" or "ws"
    url: str
    cookie: str | None
    origin: str
    # bench.selected: the client's share of the seqs is those with `seq % groups == group`.
    group: int | None = None


@dataclass
class ClientState:
    target: Target
    metric: str
    latencies: list
    progress: object
    seqs: dict = field(default_factory=dict)
    resets: int = 0
    last_id: str | None = None
    connected: bool = False
    error: str | None = None
    ws: object = None
    pings: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # every way this client ended, over the phase
    gate: object = None  # a semaphore when connects are paced rather than all at once
    gate_held: bool = False
    task: object = None

    def mark_connected(self, connected):
        self.connected = True
        self.progress[CONNECTED] += 1
        self.release_gate()
        if not connected.done():
            connected.set_result(True)

    async def acquire_gate(self):
        if self.gate is not None:
            await self.gate.acquire()
            self.gate_held = True

    def release_gate(self):
        if self.gate_held:
            self.gate_held = False
            self.gate.release()

    rtts: list = field(default_factory=list)

    def record(self, data, received_at):
        if not isinstance(data, dict) or data.get("name") != self.metric:
            return
        seq = int(data["value"])
        self.seqs[seq] = self.seqs.get(seq, 0) + 1
        self.latencies.append(received_at - float(data["ts"]))
        self.progress[RECEIVED] += 1

    def record_notification(self, notification, received_at):
        """The soak's notifications: title "<metric> <seq>", body the unix time it was sent."""
        name, _, seq = str(notification.get("title", "")).rpartition(" ")
        if name == self.metric and seq.isdigit():
            self.record({"name": name, "value": int(seq), "ts": notification.get("body") or 0}, received_at)


def headers_for(target, last_id=None):
    headers = {"Origin": target.origin}
    if target.cookie:
        headers["Cookie"] = f"sessionid={target.cookie}"
    if last_id:
        headers["Last-Event-ID"] = last_id
    return headers


def parse_sse_block(block):
    """(event type, id, data text) of one SSE event block; comments give (None, None, None)."""
    event = event_id = None
    data = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"id:"):
            event_id = line[3:].strip().decode()
    if not data and event is None:
        return None, None, None
    return event or "message", event_id, b"\n".join(data)


async def run_sse(session, state, connected):
    """One SSE stream: connect, signal `connected`, then read events until cancelled.

    The stream counts as open at its first bytes, not at the headers: the product
    fixes where a stream starts before it sends `stream-open`, so events published
    between the headers and that moment are not the stream's to deliver.
    """
    target = state.target
    async with (
        asyncio.timeout(HANDSHAKE_TIMEOUT) as handshake,
        session.get(target.url, headers=headers_for(target, state.last_id)) as response,
    ):
        if response.status != 200:
            body = (await response.text())[:200]
            raise ConnectionError(f"HTTP {response.status}: {body}")
        buffer = b""
        async for chunk in response.content.iter_any():
            received_at = time.time()
            if not state.connected:
                handshake.reschedule(None)
                state.mark_connected(connected)
            # One split per chunk: a batch arrives as one chunk of many events.
            *blocks, buffer = (buffer + chunk.replace(b"\r\n", b"\n")).split(b"\n\n")
            for block in blocks:
                event, event_id, data = parse_sse_block(block)
                if event_id:
                    state.last_id = event_id
                if event == "metric":
                    state.record(json.loads(data), received_at)
                elif event == "stream-reset":
                    state.resets += 1
    raise ConnectionError("stream closed by the server")


async def run_ws(session, state, connected):
    """One WebSocket: connect, wait for `hello`, then read messages until cancelled."""
    target = state.target
    async with (
        asyncio.timeout(HANDSHAKE_TIMEOUT) as handshake,
        session.ws_connect(target.url, headers=headers_for(target), heartbeat=None) as ws,
    ):
        state.ws = ws
        async for message in ws:
            received_at = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            kind = data.get("type")
            if kind == "hello" and not state.connected:
                handshake.reschedule(None)
                state.mark_connected(connected)
            elif kind == "presence":
                # The bench's broadcast rides on presence (see bench.publisher); real
                # presence lists (users) are ignored by `record`.
                for entry in data.get("online", []):
                    state.record(entry, received_at)
            elif kind == "notification":
                state.record_notification(data.get("notification") or {}, received_at)
            elif kind == "pong":
                sent = state.pings.pop(data.get("id"), None)
                if sent is not None:
                    state.rtts.append(received_at - sent)
        if not state.connected:
            raise ConnectionError(f"closed before hello (code {ws.close_code})")
        raise ConnectionError(f"closed by the server (code {ws.close_code})")


async def client_task(session, state, connected, deadline):
    """Keep one client connected the way the page does: on failure, retry with backoff and jitter.

    SSE retries resume from the last id received (as ReconnectingEventSource does),
    so a stream the server ends costs no events unless the product loses them.
    `connected` resolves on the first success, or False once `deadline` passes.
    """
    run = run_sse if state.target.kind == "sse" else run_ws
    backoff = RETRY_FIRST
    while True:
        was_connected = False
        try:
            await state.acquire_gate()
            await run(session, state, connected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed client is counted, never fatal to the others
            state.error = f"{type(exc).__name__}: {exc}"[:200]
            state.errors[state.error] = state.errors.get(state.error, 0) + 1
        finally:
            state.release_gate()
            if state.connected:
                was_connected = True
                state.connected = False
                state.progress[CONNECTED] -= 1
        if not connected.done() and time.monotonic() > deadline:
            connected.set_result(False)
            return
        backoff = RETRY_FIRST if was_connected else min(backoff * 2, RETRY_MAX)
        await asyncio.sleep(random.uniform(backoff / 2, backoff))


class LoadProcess:
    def __init__(self, progress):
        self.progress = progress
        self.session = None
        self.states = []
        self.tasks = []
        self.latencies = []

    async def start_clients(self, states, gate=None, timeout=CONNECT_TIMEOUT):
        """Start clients and wait until all are connected (retries included) or `timeout` passes.

        Returns the outcome and the clients that never connected (their tasks cancelled)."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        futures = []
        for state in states:
            state.errors, state.gate = {}, gate
            connected = loop.create_future()
            state.task = asyncio.create_task(client_task(self.session, state, connected, started + timeout))
            self.tasks.append(state.task)
            futures.append(connected)
        await asyncio.wait(futures, timeout=timeout + RETRY_MAX)
        elapsed = time.monotonic() - started
        errors = {}
        for state in states:
            for reason, count in state.errors.items():
                errors[reason] = errors.get(reason, 0) + count
            state.errors = {}  # from here on, errors are streams that ended early
        failed = [s for s, f in zip(states, futures, strict=True) if not (f.done() and f.result())]
        for state in failed:
            state.task.cancel()
        outcome = {"elapsed": elapsed, "connected": len(states) - len(failed), "failed": len(failed)}
        return {**outcome, "errors": errors}, failed

    async def connect(self, targets, metric, paced=True, timeout=CONNECT_TIMEOUT):
        """All clients at once (the storm); any it left out then connect a few at a time,
        so the fan-out can still be measured when the storm itself fails."""
        self.latencies = []
        self.states = [ClientState(t, metric, self.latencies, self.progress) for t in targets]
        outcome, failed = await self.start_clients(self.states, timeout=timeout)
        if failed and paced:
            paced, _ = await self.start_clients(failed, asyncio.Semaphore(PACED_CONCURRENCY), PACED_TIMEOUT)
            outcome["paced"] = paced
        return outcome

    async def stop_tasks(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def reconnect(self):
        """Drop every stream at once and open them all again (SSE resumes from Last-Event-ID)."""
        await self.stop_tasks()
        outcome, _ = await self.start_clients(self.states)
        return outcome

    async def ping(self, rounds, spread):
        """Each WebSocket sends `rounds` pings at random moments within `spread` seconds per round."""

        async def pinger(state, index):
            for round_ in range(rounds):
                await asyncio.sleep(random.uniform(0, spread))
                ping_id = f"p{index}-{round_}"
                state.pings[ping_id] = time.time()
                with contextlib.suppress(Exception):
                    await state.ws.send_str(json.dumps({"type": "ping", "id": ping_id}))

        live = [s for s in self.states if s.connected and s.ws is not None]
        await asyncio.gather(*(pinger(s, i) for i, s in enumerate(live)))
        await asyncio.sleep(1.0)  # let the last answers arrive
        rtts = [rtt for s in live for rtt in s.rtts]
        unanswered = sum(len(s.pings) for s in live)
        return {"rtts": rtts, "unanswered": unanswered}

    def collect(self, expected_seqs, groups=None):
        """Deliveries, loss and duplicates by sequence number, over this process's clients
        (with `groups`, each client expects only the seqs of its target's group).

        A client with loss either `stopped` (it got a prefix of the events, then
        nothing) or has `holes` (it got events after the ones it missed): the first
        is a stalled stream, the second a stream that skipped events.
        """
        expected = list(expected_seqs)
        delivered = duplicates = lost = with_loss = stopped = resets = 0
        ended, first_missing = {}, {}
        for state in self.states:
            for reason, count in state.errors.items():
                ended[reason] = ended.get(reason, 0) + count
            delivered += sum(state.seqs.values())
            duplicates += sum(count - 1 for count in state.seqs.values() if count > 1)
            wanted = expected if groups is None else expected[state.target.group :: groups]
            missing = [seq for seq in wanted if seq not in state.seqs]
            lost += len(missing)
            resets += state.resets
            if missing:
                with_loss += 1
                stopped += max(state.seqs, default=-1) < missing[0]
                first_missing[missing[0]] = first_missing.get(missing[0], 0) + 1
        return {
            "clients": len(self.states),
            "deliveries": delivered,
            "duplicates": duplicates,
            "lost": lost,
            "clients_with_loss": with_loss,
            "clients_stopped": stopped,
            "resets": resets,
            "ended": ended,
            "first_missing_seq": first_missing,
            "latencies": list(self.latencies),
        }

    async def serve(self, pipe):
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=None)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        try:
            while True:
                command, *args = await loop.run_in_executor(None, pipe.recv)
                if command == "quit":
                    pipe.send({"ok": True})
                    return
                pipe.send(await self.handle(command, *args))
        finally:
            await self.stop_tasks()
            await self.session.close()

    async def handle(self, command, *args):
        if command == "connect":
            targets, metric, *options = args
            return await self.connect(targets, metric, **(options[0] if options else {}))
        if command == "reconnect":
            return await self.reconnect()
        if command == "ping":
            return await self.ping(*args)
        if command == "collect":
            return self.collect(*args)
        if command == "disconnect":
            await self.stop_tasks()
            self.states = []
            return {"ok": True}
        raise ValueError(f"unknown command {command!r}")


def load_process_main(pipe, progress):
    """Entry point of a load-generator process (multiprocessing target)."""
    import signal

    from bench.limits import raise_open_files_limit

    # Ctrl-C reaches the whole process group; the orchestrator does the stopping.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files_limit()
    asyncio.run(LoadProcess(progress).serve(pipe))


def stop_helper(process, pipe, graceful=True):
    """Ask a helper process to quit (it closes its clients); terminate it if it is busy or stuck."""
    if graceful and process.is_alive():
        try:
            pipe.send(("quit",))
            if pipe.poll(10):
                pipe.recv()
        except (OSError, EOFError):
            pass
        process.join(5)
    if process.is_alive():
        process.terminate()
        process.join(5)

"""Real servers at the delivery boundary: a webhook receiver and an SMTP server.

Both listen on a free local port in the test process and are started and
stopped by the tests. The receiver checks every request's signature the way a
real one would, and can be told what to answer, to hold a request, or to go
away and come back on the same port.
"""

import hashlib
import hmac
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from deploy.supervisor import free_port


@dataclass
class Request:
    path: str
    headers: dict
    body: bytes
    signature_ok: bool
    received_at: float
    received_wall: float = 0.0  # time.time(), for latencies against timestamps in the payload
    status: int = 0  # what the receiver answered; 0 while held or never answered

    @property
    def payload(self):
        return json.loads(self.body)

    @property
    def delivery_id(self):
        return self.headers.get("x-livedash-delivery")


@dataclass
class WebhookReceiver:
    secret: str = "s3cret-for-tests"
    port: int = field(default_factory=free_port)
    requests: list = field(default_factory=list)
    # False: a plain HTTP receiver (apprise's json://, ntfy://), which checks no signature.
    signed: bool = True

    def __post_init__(self):
        self.answers = queue.Queue()  # statuses to answer, in order; 200 when empty
        self.hold = None  # an Event: while set on a request, the answer waits for it
        self.held = threading.Event()
        self._changed = threading.Condition()
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                request = Request(
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    signature_ok=hmac.compare_digest(self.headers.get("X-Livedash-Signature", ""), expected),
                    received_at=time.monotonic(),
                    received_wall=time.time(),
                )
                receiver._record(request)
                hold = receiver.hold
                if hold is not None:
                    receiver.held.set()
                    hold.wait(60)
                    self.close_connection = True
                    return  # Never answered: the sender was gone.
                try:
                    status = receiver.answers.get_nowait()
                except queue.Empty:
                    status = 200 if request.signature_ok or not receiver.signed else 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                request.status = status
                receiver._notify()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, request):
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _notify(self):
        with self._changed:
            self._changed.notify_all()

    def accepted(self):
        """The requests answered with a 2xx."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(self, predicate, timeout=30.0):
        """Block until predicate(self) is true; fails with what was received so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver condition not met in {timeout:.0f}s; got "
                        f"{[(r.payload.get('title'), r.status) for r in self.requests]}"
                    )
                self._changed.wait(min(remaining, 0.2))


class _Inbox:
    def __init__(self):
        self.messages = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.changed:
            self.messages.append(envelope)
            self.changed.notify_all()
        return "250 OK"


class SMTPServer:
    """aiosmtpd in the test process, on a free port; `messages` holds the envelopes."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.inbox = _Inbox()
        self._controller = None

    @property
    def messages(self):
        return self.inbox.messages

    def start(self):
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self.inbox.changed:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}")
                self.inbox.changed.wait(min(remaining, 0.2))
        return self.messages

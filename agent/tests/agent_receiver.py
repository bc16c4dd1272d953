"""A real HTTP server standing in for livedash's `/api/v2/write`, in a thread of the test.

It records every request (headers, gunzipped lines) and answers what the test scripts:
204 by default, or the statuses queued with `answer(...)`, in order.
"""

import gzip
import http.server
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict
    lines: list
    status: int
    at: float


@dataclass
class Receiver:
    requests: list = field(default_factory=list)
    scripted: deque = field(default_factory=deque)
    lock: threading.RLock = field(default_factory=threading.RLock)
    server: http.server.ThreadingHTTPServer | None = None

    def answer(self, *statuses):
        """Queue answers: an int status, or (status, {header: value})."""
        with self.lock:
            self.scripted.extend(statuses)

    def start(self, port=0):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with receiver.lock:
                    answer = receiver.scripted.popleft() if receiver.scripted else 204
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                lines = [line for line in body.decode().split("\n") if line]
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers), lines, status, time.monotonic())
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = b"" if status == 204 else b'{"error": "scripted"}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def stored_lines(self):
        """Lines of the requests answered 2xx: what livedash would have kept."""
        with self.lock:
            return [line for request in self.requests if request.status < 300 for line in request.lines]

    def wait_for(self, condition, timeout=15.0, what="the receiver's condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if condition(self):
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {len(self.requests)} request(s)")

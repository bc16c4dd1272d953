"""Prometheus endpoints for the scrape tests: real HTTP servers on free ports, in threads
of the test process, answering a given exposition, or holding each request until told."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Endpoint:
    """An HTTP server answering `text` at any path; with `hold`, each request waits until
    `release()`. It counts requests and the most it held at once."""

    def __init__(self, text="", hold=False):
        self.text = text
        self.requests = 0
        self.authorizations = []
        self.open_now = 0
        self.most_open = 0
        self.released = threading.Event()
        if not hold:
            self.released.set()
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with endpoint._lock:
                    endpoint.requests += 1
                    endpoint.authorizations.append(self.headers.get("Authorization"))
                    endpoint.open_now += 1
                    endpoint.most_open = max(endpoint.most_open, endpoint.open_now)
                try:
                    endpoint.released.wait(30)
                    body = endpoint.text.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with endpoint._lock:
                        endpoint.open_now -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def release(self):
        self.released.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

"""`python -m deploy.worker --port P [--host H]`: one web worker, the one place that knows how.

`make run`, `make stack`, compose, the image, the tests and the bench all start
their web workers here, on the server `ASGI_SERVER` names (config/settings.py):

- uvicorn (the default): uvloop, httptools, and the `websockets` library's
  sans-I/O implementation (the one uvicorn points `websockets` at from now on);
- daphne: Twisted, the server the channels documentation names.

Both get the same production options: a listen backlog of LISTEN_BACKLOG (a
reconnect storm overflows the usual 50-128 and comes back as 502s and seconds of
retries), X-Forwarded-For/-Proto believed only from FORWARDED_ALLOW_IPS (nginx,
Pushpin), no access log line per request unless ACCESS_LOG is on, WebSocket
frames limited to 1 MiB (closed with 1009 by the server itself), and a graceful
stop on SIGTERM: stop accepting, hand streams and sockets to the other workers
(dashboard.draining), then exit within GRACEFUL_SHUTDOWN_SECONDS.
"""

import argparse
import gc
import os
import signal
import sys

LISTEN_BACKLOG = 4096
# How long daphne lets a WebSocket wait for its handshake to complete (the application
# accepts after authenticating). Its 5 s default drops the late part of a storm, whose
# retries then land in the next one; uvicorn has no such limit.
DAPHNE_WS_HANDSHAKE_SECONDS = 30
WS_MAX_BYTES = 2**20
# The cyclic garbage collector's first threshold: allocations between its youngest
# passes (Python's default is 700).
GC_GENERATION0 = 10_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deploy.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--host", default="127.0.0.1")
    return parser.parse_args(argv)


def load_settings():
    """The settings, or exit with the one-line error that names the bad variable."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.ASGI_SERVER  # noqa: B018 (imports the settings module)
    except ImproperlyConfigured as exc:
        sys.exit(f"deploy.worker: {exc}")
    return settings


def tune_garbage_collector():
    """Leave what the application loaded out of the collector's passes, and run them less
    often. A worker holds thousands of streams' and sockets' objects, and a connect storm
    allocates fast: at Python's defaults the passes over them were about half of a
    connect's CPU (docs/performance.md). Garbage in cycles is still freed, a little later."""
    gc.freeze()
    gc.set_threshold(GC_GENERATION0, 10, 10)


def run_uvicorn(host, port, settings):
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from config.asgi import application

    tune_garbage_collector()

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            # Stop accepting first, so clients we send away cannot land here again;
            # then end keep-alive on plain HTTP connections (an ended stream's
            # connection closes instead of being reused), then hand the streams and
            # sockets over before uvicorn's own shutdown closes what is left.
            for server in self.servers:
                server.close()
            for connection in list(self.server_state.connections):
                if isinstance(connection, HttpToolsProtocol):
                    connection.shutdown()
            from dashboard.draining import drain

            await drain(settings.GRACEFUL_SHUTDOWN_SECONDS)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=WS_MAX_BYTES,
        # zlib state per socket costs memory and CPU for messages of a few hundred bytes.
        ws_per_message_deflate=False,
        lifespan="off",
        backlog=LISTEN_BACKLOG,
        proxy_headers=True,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        access_log=settings.ACCESS_LOG,
        server_header=False,
        timeout_graceful_shutdown=settings.GRACEFUL_SHUTDOWN_SECONDS,
        log_config=None,
    )
    Server(config).run()


def run_daphne(host, port, settings):
    # Imported first: daphne.server installs Twisted's asyncio reactor.
    from daphne.access import AccessLogGenerator
    from daphne.server import Server
    from twisted.internet import reactor
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from config.asgi import application
    from dashboard.privacy import mask

    tune_garbage_collector()

    class DaphneServer(Server):
        def listen_success(self, port):
            super().listen_success(port)
            self.ports = [*getattr(self, "ports", []), port]

    class MaskedAccessLog(AccessLogGenerator):
        """daphne writes its access lines itself, not through logging: masked here."""

        def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
            super().write_entry(host, date, mask(request), status, length, ident, user)

    server = DaphneServer(
        # daphne's own --proxy-headers would believe any peer: trust only the proxy.
        ProxyHeadersMiddleware(application, trusted_hosts=settings.FORWARDED_ALLOW_IPS),
        endpoints=[f"tcp:port={port}:interface={host}:backlog={LISTEN_BACKLOG}"],
        signal_handlers=False,
        action_logger=MaskedAccessLog(sys.stdout) if settings.ACCESS_LOG else None,
        websocket_max_message_size=WS_MAX_BYTES,
        websocket_max_frame_size=WS_MAX_BYTES,
        websocket_handshake_timeout=DAPHNE_WS_HANDSHAKE_SECONDS,
        websocket_connect_timeout=DAPHNE_WS_HANDSHAKE_SECONDS,
        application_close_timeout=settings.GRACEFUL_SHUTDOWN_SECONDS,
    )

    async def stop_gracefully():
        from dashboard.draining import drain

        for listening in getattr(server, "ports", []):
            listening.stopListening()
        await drain(settings.GRACEFUL_SHUTDOWN_SECONDS)
        # Connections that are left (idle keep-alives, an ended stream's) close now.
        for protocol in list(getattr(server, "connections", {})):
            protocol.transport.loseConnection()
        reactor.stop()

    stopping = []

    def on_signal(signum, frame):
        if stopping:
            reactor.callFromThread(reactor.stop)  # a second signal: stop now
            return
        stopping.append(signum)
        loop = reactor._asyncioEventloop
        loop.call_soon_threadsafe(lambda: loop.create_task(stop_gracefully()))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.run()


SERVERS = {"uvicorn": run_uvicorn, "daphne": run_daphne}


def main(argv=None):
    args = parse_args(argv)
    settings = load_settings()
    print(f"deploy.worker: {settings.ASGI_SERVER} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    SERVERS[settings.ASGI_SERVER](args.host, args.port, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

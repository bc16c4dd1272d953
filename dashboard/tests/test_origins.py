"""The one origin rule for the WebSocket and the SSE stream: exact scheme://host:port."""

import pytest

from dashboard.origins import origin_allowed


@pytest.fixture(autouse=True)
def _hosts(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "dash.example.org"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.org"]


@pytest.mark.parametrize(
    ("origin", "scheme", "host"),
    [
        ("http://127.0.0.1:8000", "ws", "127.0.0.1:8000"),
        ("http://127.0.0.1:8000", "http", "127.0.0.1:8000"),
        ("HTTP://LOCALHOST:8000", "ws", "localhost:8000"),
        ("http://localhost", "ws", "localhost:80"),
        ("https://localhost", "wss", "localhost"),
        # Behind TLS at the proxy: listed in CSRF_TRUSTED_ORIGINS.
        ("https://dash.example.org", "ws", "dash.example.org"),
        ("https://dash.example.org:443", "ws", "backend:8000"),
    ],
)
def test_it_allows_the_sites_own_origin_and_trusted_ones(origin, scheme, host):
    assert origin_allowed(origin, scheme, host)


@pytest.mark.parametrize(
    ("origin", "scheme", "host"),
    [
        ("http://127.0.0.1:9999", "ws", "127.0.0.1:8000"),  # another port
        ("https://localhost:3000", "ws", "localhost:8000"),
        ("https://127.0.0.1:8000", "ws", "127.0.0.1:8000"),  # another scheme
        ("ftp://127.0.0.1", "ws", "127.0.0.1"),
        ("chrome-extension://127.0.0.1", "ws", "127.0.0.1"),
        ("http://evil.example", "ws", "127.0.0.1:8000"),
        ("http://evil.example:8000", "ws", "evil.example:8000"),  # a Host not in ALLOWED_HOSTS
        ("http://dash.example.org", "ws", "127.0.0.1"),  # trusted only as https
        ("null", "ws", "127.0.0.1"),
        ("", "ws", "127.0.0.1"),
        ("http://127.0.0.1:8000/path", "ws", "127.0.0.1:8000"),
        ("http://user@127.0.0.1:8000", "ws", "127.0.0.1:8000"),
        ("http://127.0.0.1:99999", "ws", "127.0.0.1:99999"),
    ],
)
def test_it_refuses_every_other_origin(origin, scheme, host):
    assert not origin_allowed(origin, scheme, host)

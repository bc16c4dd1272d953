"""Share-link tokens stay private: no log line holds one (Django's, uvicorn's and
daphne's access lines on real workers), and `/s/` answers send no Referer elsewhere."""

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from dashboard.privacy import MASK, MaskShareTokens, mask

TOKEN = "Zq3xN0tAReal-Token_0123456789abcdefghijklmnop"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /events/?channel=metrics&share={TOKEN}&match=cpu HTTP/1.1",
        f"GET /events/?share={TOKEN} HTTP/1.1",
        f"GET /api/metrics/history/?minutes=5&share%3D{TOKEN}",
        f"Not Found: /s/{TOKEN}/",
        f"GET /s/{TOKEN}/?kiosk=1 HTTP/1.1",
        f'"GET /s/{TOKEN}" 404',
    ],
)
def test_it_masks_the_token_wherever_it_appears(text):
    masked = mask(text)
    assert TOKEN not in masked and MASK in masked


def test_it_leaves_other_text_alone():
    for text in ("GET /events/?channel=metrics&match=cpu", "shared nothing", "/static/s.css", "sharez=1"):
        assert mask(text) == text


def test_every_configured_handler_masks_a_record_with_arguments(settings):
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", f"/events/?channel=metrics&share={TOKEN}"),
        None,
    )
    assert MaskShareTokens().filter(record)
    assert TOKEN not in record.getMessage() and "/events/?channel=metrics&share=***" in record.getMessage()
    handlers = settings.LOGGING["handlers"]
    assert handlers and all("share_tokens" in handler.get("filters", ()) for handler in handlers.values())
    assert logging.getLogger("django").handlers == []  # no unmasked handler of Django's own
    root = logging.getLogger()
    assert any(isinstance(f, MaskShareTokens) for h in root.handlers for f in h.filters)


def test_share_pages_send_no_referrer_and_other_pages_keep_the_sites_policy(client, db):
    shared = client.get(f"/s/{TOKEN}/")
    assert shared["Referrer-Policy"] == "no-referrer"
    assert client.get("/s/")["Referrer-Policy"] == "no-referrer"
    assert client.get("/login/")["Referrer-Policy"] == "same-origin"


@pytest.mark.slow
@pytest.mark.servers
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
async def test_a_workers_access_log_and_warnings_hold_no_token(web_workers, server):
    (base,) = web_workers(1, env={"ACCESS_LOG": "1", "ASGI_SERVER": server})
    async with httpx.AsyncClient(timeout=10) as client:
        for path in (
            f"/events/?channel=metrics&share={TOKEN}",
            f"/s/{TOKEN}/",
            f"/api/metrics/history/?share={TOKEN}",
        ):
            response = await client.get(base + path)
            assert response.status_code in (403, 404)
        marker = f"/healthz?after-{server}"
        await client.get(base + marker)
    log = Path(web_workers.workers[0].log_path)
    deadline = time.monotonic() + 10
    while "after-" + server not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        await asyncio.sleep(0.05)
    text = log.read_text()
    assert "share=***" in text and "/s/***/" in text
    assert TOKEN not in text

"""Posting line protocol to livedash's `/api/v2/write`, and what each answer means.

Only the standard library: the agent must install on any host with Python and psutil.
A fresh connection per request: a kept-alive one that the server has closed in the
meantime would fail in a way that looks like livedash being away.
"""

import email.utils
import gzip
import http.client
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger("livedash_agent")

WRITE_PATH = "/api/v2/write"
TIMEOUT_SECONDS = 15.0


class Result(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # livedash away, failing (5xx) or asking to slow down (429): try again later
    REFUSED = "refused"  # a 4xx other than 429: the same request would be refused again


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""
    retry_after: float | None = None


def write_url(base_url):
    """`URL/api/v2/write?precision=ns`, whatever path prefix livedash is served under."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the livedash URL must be http:// or https:// with a host, got {base_url!r}")
    path = parts.path.rstrip("/") + WRITE_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "precision=ns", ""))


def parse_retry_after(value, now=time.time):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


class Sender:
    def __init__(self, url, token, user_agent="livedash-agent", timeout=TIMEOUT_SECONDS):
        self.url = write_url(url)
        self.token = token
        self.user_agent = user_agent
        self.timeout = timeout

    def push(self, lines):
        body = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"))
        request = urllib.request.Request(  # noqa: S310 (write_url() allows http(s) only)
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Token {self.token}",
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Encoding": "gzip",
                "User-Agent": self.user_agent,
                "Connection": "close",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) only)
                response.read()
                return Outcome(Result.DELIVERED, str(response.status))
        except urllib.error.HTTPError as error:
            return self._answer(error)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            return Outcome(Result.RETRY, f"cannot reach livedash: {reason}")

    @staticmethod
    def _answer(error):
        try:
            text = error.read(2048).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        detail = f"HTTP {error.code}: {text}" if text else f"HTTP {error.code}"
        if error.code == 429:
            return Outcome(Result.RETRY, detail, parse_retry_after(error.headers.get("Retry-After")))
        if error.code >= 500:
            return Outcome(Result.RETRY, detail)
        return Outcome(Result.REFUSED, detail)


class Backoff:
    """Exponential backoff with jitter: many agents cut off together do not come back in step."""

    def __init__(self, first=1.0, cap=300.0, rng=random.random):
        self.first = first
        self.cap = cap
        self._rng = rng
        self.failures = 0

    def next_delay(self, retry_after=None):
        self.failures += 1
        ceiling = min(self.cap, self.first * 2 ** (self.failures - 1))
        # "Equal jitter": at least half the ceiling, so the delays still grow.
        delay = ceiling / 2 + self._rng() * ceiling / 2
        if retry_after is not None:
            # livedash said when: never earlier, and a little spread after it.
            delay = retry_after + self._rng() * min(1.0, retry_after / 10 + 0.1)
        return delay

    def reset(self):
        self.failures = 0

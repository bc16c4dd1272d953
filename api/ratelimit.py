"""Per-token rate limits kept in Redis, so they hold across every worker.

A fixed one-second window per token and kind ("requests", "points"): one Lua call
adds the request's amount and takes it back when that would pass the limit, so
refused requests do not eat into the next caller's allowance.
"""

import math
import time
import weakref

from django.conf import settings

from api.auth import ApiError
from dashboard.redis import get_async_client, key

# KEYS: the window's counter. ARGV: amount, limit. Returns 1 when admitted.
TAKE = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], 2000) end
if total > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
return 1
"""

_scripts = weakref.WeakKeyDictionary()


def _script(client):
    # One Script per client (one per event loop), so its SHA is computed once.
    if client not in _scripts:
        _scripts[client] = client.register_script(TAKE)
    return _scripts[client]


def limits():
    return {
        "requests": settings.API_TOKEN_REQUESTS_PER_SECOND,
        "points": settings.API_TOKEN_POINTS_PER_SECOND,
    }


async def take(token, kind, amount=1):
    """Count `amount` against the token's per-second `kind` limit; raises 429 when over."""
    limit = limits()[kind]
    if amount > limit:
        # Waiting would never help: say so rather than ask for a retry forever.
        raise ApiError(
            413,
            "too_large",
            f"{amount} points in one request is over this token's limit of {limit} points/s "
            "(API_TOKEN_POINTS_PER_SECOND); send smaller batches",
        )
    now = time.time()
    window = int(now)
    client = get_async_client()
    admitted = await _script(client)(keys=[key("api", "rate", token.pk, kind, window)], args=[amount, limit])
    if not admitted:
        retry_after = max(1, math.ceil(window + 1 - now))
        raise ApiError(
            429,
            "rate_limited",
            f"this token is over its limit of {limit} {kind}/s; retry after {retry_after} s",
            {"Retry-After": str(retry_after)},
        )

"""The collector's sampling state (interval, paused), shared through Redis.

Any worker may change it (from a WebSocket command); the collector reads it at
every tick, so a change takes effect from the next tick whichever worker took it.
"""

from dataclasses import dataclass

from dashboard.redis import get_async_client, get_sync_client, key

DEFAULT_INTERVAL = 1.0
MIN_INTERVAL = 0.25
MAX_INTERVAL = 60.0


@dataclass(frozen=True)
class SamplingState:
    interval: float = DEFAULT_INTERVAL
    paused: bool = False


def _state_key():
    return key("sampling")


def _parse(raw):
    def text(name):
        value = raw.get(name.encode()) if raw else None
        return value.decode() if value is not None else None

    try:
        interval = float(text("interval") or DEFAULT_INTERVAL)
    except ValueError:
        interval = DEFAULT_INTERVAL
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        interval = DEFAULT_INTERVAL
    return SamplingState(interval=interval, paused=text("paused") == "1")


def get_state():
    return _parse(get_sync_client().hgetall(_state_key()))


async def aget_state():
    return _parse(await get_async_client().hgetall(_state_key()))


def validate_interval(seconds):
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("seconds must be a number")
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ValueError(f"seconds must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g}")
    return float(seconds)


async def aset_interval(seconds):
    seconds = validate_interval(seconds)
    await get_async_client().hset(_state_key(), "interval", repr(seconds))
    return await aget_state()


async def aset_paused(paused):
    await get_async_client().hset(_state_key(), "paused", "1" if paused else "0")
    return await aget_state()

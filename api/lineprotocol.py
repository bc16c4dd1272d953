"""InfluxDB line protocol in, livedash metric points out.

Parsing is line_protocol_parser's; this module numbers the lines, converts the
timestamps and maps each (measurement, field, tags) to one metric key.

The mapping (the README shows it with examples) is deterministic and free of
collisions between series:

- Each part (measurement, field key, tag keys and values, tags sorted by key) is
  *plain* when it is made of letters, digits, `-` and `_`, does not start or end
  with `_` and has no `__`.
- When every part is plain, the key is the parts joined by `__`: the measurement
  alone for a line without tags whose field is `value` (`cpu value=1` -> `cpu`),
  then the field (`cpu usage=1` -> `cpu__usage`), then each tag's key and value
  (`cpu,host=a usage=1` -> `cpu__usage__host__a`; with tags the field is always
  written, `value` included). Plain parts never contain `__`, so the key splits
  back into exactly its parts, and the count of parts tells which form it is.
- Otherwise, or when that key would be longer than 64 characters, the key is a
  readable slug of the parts cut to fit, then `___`, then 13 characters of the
  SHA-256 of the exact series identity. Only this form contains `___`, so it never
  meets a key of the first form; two series share one only if SHA-256 collides in
  65 bits.
"""

import base64
import hashlib
import json
import re

import line_protocol_parser

from dashboard.models import KEY_MAX_LENGTH

PRECISIONS = {"ns": 10**9, "us": 10**6, "ms": 10**3, "s": 1}

PLAIN = re.compile(r"^(?!_)(?!.*__)[-A-Za-z0-9_]+(?<!_)$")
UNSAFE = re.compile(r"[^-A-Za-z0-9]+")
SEPARATOR = "__"
HASHED = "___"
HASH_LENGTH = 13


class LineError(ValueError):
    def __init__(self, number, message):
        super().__init__(f"line {number}: {message}")
        self.number = number


def metric_key(measurement, field, tags):
    """The metric key of one field of one series (see the module docstring)."""
    tag_items = sorted(tags.items())
    parts = [measurement]
    if field != "value" or tag_items:
        parts.append(field)
    for tag_key, tag_value in tag_items:
        parts.extend((tag_key, tag_value))
    if all(PLAIN.match(part) for part in parts):
        key = SEPARATOR.join(parts)
        if len(key) <= KEY_MAX_LENGTH:
            return key
    identity = json.dumps([measurement, field, tag_items], ensure_ascii=False, separators=(",", ":"))
    digest = base64.b32encode(hashlib.sha256(identity.encode()).digest()).decode().lower()
    readable = SEPARATOR.join(UNSAFE.sub("_", part).strip("_") or "x" for part in parts)
    readable = readable[: KEY_MAX_LENGTH - len(HASHED) - HASH_LENGTH].strip("_")
    return f"{readable}{HASHED}{digest[:HASH_LENGTH]}"


def parse(text, precision="ns"):
    """Points `(key, value, ts, line_number)` from a line protocol body.

    Integer, unsigned, float and boolean (as 1 or 0) fields become points; string
    fields are skipped, as the charts cannot draw them. Raises `LineError` naming
    the first bad line, counted from 1."""
    divisor = PRECISIONS[precision]
    points = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            parsed = line_protocol_parser.parse_line(line)
        except line_protocol_parser.LineFormatError as exc:
            raise LineError(number, str(exc).rstrip(".") + f": {_shorten(line)!r}") from None
        if parsed is None:  # a comment
            continue
        timestamp = parsed["time"]
        ts = None if timestamp is None else timestamp / divisor
        for field, value in sorted(parsed["fields"].items()):
            if isinstance(value, str):
                continue
            key = metric_key(parsed["measurement"], field, parsed["tags"])
            points.append((key, int(value) if isinstance(value, bool) else value, ts, number))
    return points


def _shorten(line, limit=80):
    return line if len(line) <= limit else line[:limit] + "…"

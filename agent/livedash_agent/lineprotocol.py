"""InfluxDB line protocol: the text livedash's `/api/v2/write` reads.

One point per line, `measurement,tag=value field=value timestamp`, escaped as the
line protocol reference says: commas and spaces in measurements; commas, equals
signs and spaces in tag keys, tag values and field keys. Newlines cannot be
escaped at all, so a name or label holding one is refused.
"""

import math
import re

_MEASUREMENT_SPECIALS = re.compile(r"([, ])")
_KEY_SPECIALS = re.compile(r"([,= ])")


def _check(text, what):
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty string, got {text!r}")
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must not hold a line break, got {text!r}")
    # A trailing backslash would escape the separator written after it.
    if text.endswith("\\"):
        raise ValueError(f"{what} must not end with a backslash, got {text!r}")
    return text


def escape_measurement(name):
    return _MEASUREMENT_SPECIALS.sub(r"\\\1", _check(name, "measurement"))


def escape_key(text, what="tag"):
    return _KEY_SPECIALS.sub(r"\\\1", _check(text, what))


def format_number(value):
    """A float field: line protocol has no NaN or infinity, so those are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field value must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"field value must be finite, got {value!r}")
    return repr(number)


def encode_tags(tags):
    """`,k=v,...` sorted by key (InfluxDB's advice, and a stable text); empty values left out
    since line protocol has no empty tag value."""
    return "".join(
        f",{escape_key(name, 'tag key')}={escape_key(value, 'tag value')}"
        for name, value in sorted(tags.items())
        if value != ""
    )


def encode_line(measurement, value, timestamp_ns, tags=None):
    """One point whose field is `value`: livedash names it `measurement`, its tags its labels."""
    tags_text = encode_tags(tags or {})
    return f"{escape_measurement(measurement)}{tags_text} value={format_number(value)} {int(timestamp_ns)}"


def encode_sample(values, timestamp_ns, tags=None):
    """Lines for a {name: value} sample at one time. A value that is not a finite number is
    left out (line protocol cannot carry it; a reading psutil could not make), the others kept;
    a bad name or tag raises `ValueError`."""
    tags_text = encode_tags(tags or {})
    lines = []
    for name, value in values.items():
        try:
            number = format_number(value)
        except ValueError:
            continue
        lines.append(f"{escape_measurement(name)}{tags_text} value={number} {int(timestamp_ns)}")
    return lines

"""Series: a metric name plus a set of labels, and the text that names one.

A series' id is its text form as Prometheus writes it, `name{a="x",b="y"}`: label
names sorted, values escaped (`\\\\`, `\\"`, `\\n`), and a series without labels
is just `name`, so every unlabelled metric keeps the key it always had. Ids are
the keys wherever a series is named (history, CSV, SSE, the series API); the
contract ("Series and labels") is the public description.

Pure functions, no Django: the selector parser, the write path, the series index
and the storage all take their rules from here.
"""

import hashlib
import re

# The metric name rule (older than labels, unchanged by them).
METRIC_NAME = re.compile(r"[-a-zA-Z0-9_]+")
METRIC_NAME_MAX_LENGTH = 64

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
LABEL_NAME_MAX_LENGTH = 64
LABEL_VALUE_MAX_LENGTH = 256
MAX_LABELS = 16
# `__` names are Prometheus' own (`__name__`): reserved, so a selector's `__name__`
# can never be mistaken for a label someone pushed.
RESERVED_PREFIX = "__"

# The longest id the rules above allow: every value fully escaped (two characters
# each), `{`, `}`, and per label `="`, `"` and a comma (one too many, harmless).
MAX_ID_LENGTH = (
    METRIC_NAME_MAX_LENGTH + 2 + MAX_LABELS * (LABEL_NAME_MAX_LENGTH + 2 * LABEL_VALUE_MAX_LENGTH + 4)
)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}
_NEEDS_ESCAPE = re.compile(r'[\\"\n]')
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def validate_metric_name(name):
    """`name` if it is a metric name (a slug of at most 64 characters); else `ValueError`."""
    if not isinstance(name, str):
        raise ValueError(f"metric name must be a string, got {type(name).__name__}")
    if not name:
        raise ValueError("metric name must not be empty")
    if len(name) > METRIC_NAME_MAX_LENGTH:
        raise ValueError(f"metric name must be at most {METRIC_NAME_MAX_LENGTH} characters, got {len(name)}")
    if not METRIC_NAME.fullmatch(name):
        raise ValueError(f"metric name must be a slug (letters, digits, - and _), got {name!r}")
    return name


def validate_label_name(label):
    if not isinstance(label, str):
        raise ValueError(f"label name must be a string, got {type(label).__name__}")
    if not label:
        raise ValueError("label name must not be empty")
    if len(label) > LABEL_NAME_MAX_LENGTH:
        raise ValueError(
            f"label name must be at most {LABEL_NAME_MAX_LENGTH} characters, got {len(label)}"
            f" ({label[:20]!r}...)"
        )
    if not LABEL_NAME.fullmatch(label):
        raise ValueError(f"label name must match [a-zA-Z_][a-zA-Z0-9_]*, got {label!r}")
    if label.startswith(RESERVED_PREFIX):
        raise ValueError(f"label name must not start with {RESERVED_PREFIX!r} (reserved), got {label!r}")
    return label


def validate_label_value(label, value):
    if not isinstance(value, str):
        raise ValueError(f"label {label!r}: value must be a string, got {type(value).__name__}")
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        raise ValueError(
            f"label {label!r}: value must be at most {LABEL_VALUE_MAX_LENGTH} characters, got {len(value)}"
        )
    try:
        # A lone surrogate (JSON can carry one) has no UTF-8 form: it could be neither
        # stored nor hashed into a key.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"label {label!r}: value is not valid Unicode text") from None
    return value


def validate_labels(labels):
    """The labels as a new dict sorted by name, validated; `ValueError` naming the problem.

    `None` is no labels. A label with an empty value is dropped, as Prometheus treats
    it: the same as no such label (so `cpu{host=""}` and `cpu` are one series, and
    `host=""` in a selector finds it)."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ValueError(f"labels must be an object of names to strings, got {type(labels).__name__}")
    checked = {}
    for label, value in labels.items():
        validate_label_name(label)
        validate_label_value(label, value)
        if value:
            checked[label] = value
    if len(checked) > MAX_LABELS:
        raise ValueError(f"a series has at most {MAX_LABELS} labels, got {len(checked)}")
    return dict(sorted(checked.items()))


def escape_value(value):
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], value)


def series_id(name, labels=None):
    """The id of the series `name` + `labels`, validated (`ValueError` naming the problem)."""
    name = validate_metric_name(name)
    return format_id(name, validate_labels(labels))


def format_id(name, labels):
    """The id of an already validated name and sorted labels (the hot path's half of
    `series_id`: the write path validates once and formats once)."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{label}="{escape_value(value)}"' for label, value in labels.items()) + "}"


def parse_series_id(text):
    """(name, labels) of a series id; `ValueError` unless `text` is an id exactly as
    `series_id` writes it (labels sorted, no spaces, only the three escapes), so one
    series has one id and one id one series."""
    if not isinstance(text, str):
        raise ValueError(f"series id must be a string, got {type(text).__name__}")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"series id must be at most {MAX_ID_LENGTH} characters, got {len(text)}")
    brace = text.find("{")
    if brace < 0:
        return validate_metric_name(text), {}
    name = validate_metric_name(text[:brace])
    labels = {}
    pos = brace + 1
    end = len(text)
    while True:
        eq = text.find('="', pos)
        if eq < 0:
            raise ValueError(f'series id: expected label="value" at offset {pos}')
        label = validate_label_name(text[pos:eq])
        pos = eq + 2
        chars = []
        while True:
            if pos >= end:
                raise ValueError(f"series id: unterminated value of label {label!r}")
            char = text[pos]
            if char == '"':
                pos += 1
                break
            if char == "\\":
                escaped = text[pos + 1 : pos + 2]
                if escaped not in _UNESCAPES:
                    raise ValueError(f"series id: invalid escape \\{escaped} in label {label!r}")
                chars.append(_UNESCAPES[escaped])
                pos += 2
                continue
            chars.append(char)
            pos += 1
        if label in labels:
            raise ValueError(f"series id: label {label!r} twice")
        labels[label] = validate_label_value(label, "".join(chars))
        if not labels[label]:
            raise ValueError(f"series id: label {label!r} has an empty value (an id leaves such a label out)")
        if text[pos : pos + 1] == ",":
            pos += 1
            continue
        if text[pos:] == "}":
            break
        raise ValueError(f"series id: expected ',' or a final '}}' at offset {pos}")
    if list(labels) != sorted(labels):
        raise ValueError("series id: label names must be sorted")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"a series has at most {MAX_LABELS} labels, got {len(labels)}")
    return name, labels


# Bytes of the digest in a labelled series' storage key.
KEY_DIGEST_BYTES = 16


def storage_key(series):
    """A short key for the series with id `series`, for Redis keys and database columns.

    An unlabelled series' key is its name: every metric's existing keys and history
    stay where they are. A labelled series' key is `name:` plus the hex BLAKE2b-128
    digest of its id (ids run to kilobytes; a key must stay small and fixed). A name
    never contains `:`, so no labelled key equals an unlabelled one, and two labelled
    keys differ when their names do. Two labelled series of one name share a key only
    if their ids collide in 128 bits: at a million series the chance is about 1 in
    10^27 (birthday bound n^2 / 2^129), far below a disk's undetected error rate.
    The digest is a fixed function of the id, so every process and every release
    computes the same key."""
    brace = series.find("{")
    if brace < 0:
        return series
    digest = hashlib.blake2b(series.encode("utf-8"), digest_size=KEY_DIGEST_BYTES).hexdigest()
    return f"{series[:brace]}:{digest}"


# The longest key `storage_key` returns.
STORAGE_KEY_MAX_LENGTH = METRIC_NAME_MAX_LENGTH + 1 + 2 * KEY_DIGEST_BYTES

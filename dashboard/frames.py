"""The `metrics` channel's events (two of data, two notes: `metric-config` and
`dashboard-changed`), written and read here.

- `frame`: one per collector tick, `{"seq", "ts", "host", "values": {name: number},
  "firing": [name]}`: each value is the series `name{host="<host>"}` (frames stored
  before hosts were named have no `host`: their series are the bare names);
- `metric`: one published value of a custom series, `{"name", "labels": {label:
  value}, "series": "<id>", "value", "ts"}` (stored before labels: `{"name", "value",
  "ts"}`, the series `name`).

Readers that need series (rollups, history, filters) take them from `points_of`,
which reads both shapes, old and new, the same way.

`dashboard.live` publishes them, the history endpoint and the WebSocket `snapshot`
read them back from storage through the functions below, and the page reads them
in static/js/charts.js (`applyFrame`, `applyMetric`); docs/protocol.md and the
contract describe them for clients.
"""

import json
import math

from dashboard import series

FRAME = "frame"
METRIC = "metric"
EVENT_TYPES = (FRAME, METRIC)
# Not data: `{"key"}` says that metric's label, unit, thresholds or alert rules changed,
# so open pages fetch the definitions again (in their own language) without a reload.
CONFIG = "metric-config"


# The label a frame's values carry: the collector's host.
HOST_LABEL = "host"


def frame(seq, ts, values, firing=(), host=None):
    data = {"seq": int(seq), "ts": ts, "values": dict(values), "firing": list(firing)}
    if host is not None:
        data["host"] = host
    return data


def metric(name, value, ts, labels=None):
    """The `metric` event of an already validated name, value, ts and labels (sorted)."""
    labels = labels or {}
    return {
        "name": name,
        "labels": labels,
        "series": series.format_id(name, labels),
        "value": value,
        "ts": ts,
    }


def values_of(event_type, data):
    """{key: value} an event carries: every value of a frame by metric name, the one of
    a metric by its series id (for a metric without labels, its name)."""
    if event_type == FRAME:
        return data["values"]
    if event_type == METRIC:
        return {data.get("series", data["name"]): data["value"]}
    return {}


def _number(value):
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def points_of(event_type, data):
    """(series id, name, labels, ts, value) for every number one `metrics` event
    carries, frames and metrics alike, old shapes and new: a frame's values are the
    series `name{host="..."}` of its host. Skips anything malformed (a reader of
    storage must survive whatever it finds there) and never raises."""
    if not isinstance(data, dict):
        return
    ts = data.get("ts")
    if not _number(ts):
        return
    if event_type == FRAME:
        values = data.get("values")
        if not isinstance(values, dict):
            return
        host = data.get("host")
        labels = {HOST_LABEL: host} if isinstance(host, str) and host else {}
        # One label for every value of the frame: its text is formatted once.
        suffix = series.format_id("", labels)
        for name, value in values.items():
            if isinstance(name, str) and _number(value):
                yield name + suffix, name, labels, ts, value
    elif event_type == METRIC:
        name, value = data.get("name"), data.get("value")
        if not isinstance(name, str) or not _number(value):
            return
        labels = data.get("labels")
        if not isinstance(labels, dict) or not labels:
            yield name, name, {}, ts, value
            return
        series_id = data.get("series")
        if not isinstance(series_id, str):
            if not all(isinstance(v, str) for v in labels.values()):
                return
            series_id = series.format_id(name, dict(sorted(labels.items())))
        yield series_id, name, labels, ts, value


def select(event_type, data, selection):
    """What of one `metrics` event `selection` wants: `data` itself when all of it, a
    frame trimmed to its wanted values, or None when nothing (a malformed data event
    included). Notes (`metric-config`, `dashboard-changed`) carry no series and pass
    whole: they tell a page to reload definitions, never a value."""
    if event_type not in EVENT_TYPES:
        return data
    wanted = [
        name
        for series_id, name, labels, _ts, _value in points_of(event_type, data)
        if selection.wants(series_id, name, labels)
    ]
    if not wanted:
        return None
    if event_type == METRIC or len(wanted) == len(data["values"]):
        return data
    names = set(wanted)
    trimmed = dict(data, values={name: data["values"][name] for name in wanted})
    if isinstance(data.get("firing"), list):
        trimmed["firing"] = [name for name in data["firing"] if name in names]
    return trimmed


def decode(text):
    """An event's data as stored (JSON text), decoded; None for text that is no JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def select_json(event_type, text, selection, data=None):
    """`select` for an event's JSON text (`data`: the text decoded already): the text
    itself when all of it is wanted, the trimmed frame's JSON, or None."""
    data = decode(text) if data is None else data
    chosen = select(event_type, data, selection)
    if chosen is None:
        return None
    return text if chosen is data else json.dumps(chosen, separators=(",", ":"))


def latest_values(events_newest_first):
    """({key: latest value}, ts of the newest event) from (type, data) pairs read
    backwards: the newest frame (by metric name), overlaid with the metric events
    published after it (by series id). ({}, None) when there is none."""
    values, ts = {}, None
    for event_type, data in events_newest_first:
        if event_type not in EVENT_TYPES:
            continue
        for name, value in values_of(event_type, data).items():
            values.setdefault(name, value)
        ts = data["ts"] if ts is None else max(ts, data["ts"])
        if event_type == FRAME:
            break
    return values, ts


# Not data either: `{"uid", "version", "by"}` says dashboard `uid` was saved (version
# null: deleted) by `by`, so its open pages can say so and load it again. Sent on
# `metrics` for a dashboard everyone may see, else on each permitted user's own channel.
DASHBOARD_CHANGED = "dashboard-changed"


def dashboard_changed(uid, version, by):
    return {"uid": uid, "version": version, "by": by}

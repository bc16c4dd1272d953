"""The `metrics` channel's events (two of data, one `metric-config` note), written and read here.

- `frame`: one per collector tick, `{"seq", "ts", "values": {key: number}, "firing": [key]}`;
- `metric`: one published value of a custom metric, `{"name", "value", "ts"}`.

`dashboard.live` publishes them, the history endpoint and the WebSocket `snapshot`
read them back from storage through the functions below, and the page reads them
in static/js/charts.js (`applyFrame`, `applyMetric`); docs/protocol.md and the
contract describe them for clients.
"""

FRAME = "frame"
METRIC = "metric"
EVENT_TYPES = (FRAME, METRIC)
# Not data: `{"key"}` says that metric's label, unit, thresholds or alert rules changed,
# so open pages fetch the definitions again (in their own language) without a reload.
CONFIG = "metric-config"


def frame(seq, ts, values, firing=()):
    return {"seq": int(seq), "ts": ts, "values": dict(values), "firing": list(firing)}


def metric(name, value, ts):
    return {"name": name, "value": value, "ts": ts}


def values_of(event_type, data):
    """{key: value} an event carries: every value of a frame, the one of a metric."""
    if event_type == FRAME:
        return data["values"]
    if event_type == METRIC:
        return {data["name"]: data["value"]}
    return {}


def latest_values(events_newest_first):
    """({key: latest value}, ts of the newest event) from (type, data) pairs read
    backwards: the newest frame, overlaid with the metric events published after it.
    ({}, None) when there is none."""
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

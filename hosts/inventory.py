"""The hosts the page lists: every value of the label `host` among the live series
(the series index), every enrolled host (an active host token), their main values,
when each was last heard from and whether it is up.

Last seen is when a point of the host last reached livedash (the index's score,
livedash's clock). Up or down follows the collector's tracker (hosts.liveness): a
host is down once nothing came for DOWN_INTERVALS of its interval; a host whose
interval is not known yet (it pushed fewer than three times, or no collector runs)
is "unknown" once quiet for that many of the agent's default interval. The
collector's own host is "paused" while an operator has paused sampling.
"""

import math
import time

from api.models import ApiToken
from dashboard import selectors, series, seriesindex
from dashboard.collector import sampling
from dashboard.collector.collector import collector_host
from dashboard.redis import get_sync_client
from hosts import liveness
from hosts.liveness import DOWN_INTERVALS, FORGET_GRACE_SECONDS, HOST_LABEL

# The values shown for each host, as the agent and the collector name them.
METRICS = ("cpu", "memory", "disk", "net_rx", "net_tx")
# The agent's default interval: how long a host of unknown pace counts as recent.
DEFAULT_INTERVAL_SECONDS = 10.0
READ_BATCH = 1000

STATUSES = ("up", "down", "unknown", "never", "paused")
SORTS = ("name", "status", "last_seen", "cpu", "memory", "disk", "net")
# Down first when sorting by status: that is what someone opening the page looks for.
STATUS_ORDER = {"down": 0, "unknown": 1, "never": 2, "paused": 3, "up": 4}


def host_selector():
    return selectors.selection([f'{{{HOST_LABEL}=~".+"}}'])


def _scores(stores):
    client = get_sync_client()
    scores = []
    for start in range(0, len(stores), READ_BATCH):
        batch = stores[start : start + READ_BATCH]
        scores.extend(client.zmscore(seriesindex.live_key(), batch) if batch else [])
    return scores


def _entry(name):
    return {
        "name": name,
        "last_seen": None,
        "interval": None,
        "deadline": None,
        "status": "never",
        "values": {},
        "enrolled": False,
        "series": 0,
    }


def collect(now=None):
    """[{name, last_seen, interval, deadline, status, values, enrolled, series}] of every host."""
    now = time.time() if now is None else now
    found, _truncated = seriesindex.find(host_selector())
    stores = [series.storage_key(item["id"]) for item in found]
    hosts = {}
    for item, score in zip(found, _scores(stores), strict=True):
        name = item["labels"].get(HOST_LABEL)
        if not name:
            continue
        entry = hosts.setdefault(name, _entry(name))
        entry["series"] += 1
        if score is not None:
            entry["last_seen"] = max(entry["last_seen"] or 0.0, float(score))
        last = item.get("last")
        metric = item["name"]
        # The host's own series (labelled `host` alone), as the agent and the collector push them.
        if metric in METRICS and last and len(item["labels"]) == 1:
            entry["values"][metric] = last[1]
    for name in ApiToken.objects.active().exclude(host="").values_list("host", flat=True):
        hosts.setdefault(name, _entry(name))["enrolled"] = True
    gone = liveness.forgotten()
    paces = liveness.seen()
    # The collector's own host sends nothing while an operator has paused sampling.
    paused_host = collector_host() if sampling.get_state().paused else None
    answer = []
    for name, entry in hosts.items():
        revoked_at = gone.get(name)
        if revoked_at is not None and (entry["last_seen"] or 0.0) <= revoked_at + FORGET_GRACE_SECONDS:
            if not entry["enrolled"]:
                continue
            entry["last_seen"] = None  # enrolled again since: a new start
        pace = paces.get(name) or {}
        entry["interval"] = pace.get("interval")
        entry["deadline"] = pace.get("deadline")
        entry["status"] = "paused" if name == paused_host else status(entry, now)
        answer.append(entry)
    return answer


def status(entry, now):
    if entry["last_seen"] is None:
        return "never"
    interval = entry["interval"]
    if not interval:
        return "up" if now - entry["last_seen"] <= DOWN_INTERVALS * DEFAULT_INTERVAL_SECONDS else "unknown"
    deadline = max(entry["deadline"] or 0.0, entry["last_seen"] + DOWN_INTERVALS * interval)
    return "up" if now <= deadline else "down"


def _sort_key(field):
    def key(entry):
        if field == "name":
            return (False, entry["name"].lower(), "")
        if field == "status":
            return (False, STATUS_ORDER[entry["status"]], entry["name"].lower())
        if field == "last_seen":
            value = entry["last_seen"]
        elif field == "net":
            parts = [entry["values"].get(name) for name in ("net_rx", "net_tx")]
            value = None if all(part is None for part in parts) else sum(part or 0 for part in parts)
        else:
            value = entry["values"].get(field)
        # Hosts without the value go last either way.
        missing = value is None or not math.isfinite(value)
        return (missing, 0.0 if missing else value, entry["name"].lower())

    return key


def parse_sort(text):
    """(field, descending) of `name`, `-cpu`, ...; ValueError naming the choices."""
    text = text or "name"
    descending = text.startswith("-")
    field = text.lstrip("-")
    if field not in SORTS:
        raise ValueError(field)
    return field, descending


def arrange(entries, query="", status_filter="", sort="name"):
    """The entries whose name contains `query` (any case) and whose status is
    `status_filter` (all when empty), in the order `sort` says."""
    field, descending = parse_sort(sort)
    if status_filter and status_filter not in STATUSES:
        raise ValueError(status_filter)
    query = query.strip().lower()
    chosen = [
        entry
        for entry in entries
        if query in entry["name"].lower() and (not status_filter or entry["status"] == status_filter)
    ]
    if descending:
        # Missing values stay last when the order is reversed.
        present = [e for e in chosen if not _sort_key(field)(e)[0]]
        missing = [e for e in chosen if _sort_key(field)(e)[0]]
        return sorted(present, key=_sort_key(field), reverse=True) + sorted(missing, key=_sort_key("name"))
    return sorted(chosen, key=_sort_key(field))

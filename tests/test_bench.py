"""`python -m bench --quick` end to end: real servers, real clients, a results file that says it all.

The bench is not a timed test (its targets are reported, not asserted); this
checks that it runs, measures every path, and that nothing was lost.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

PHASE_FIELDS = {
    "path",
    "clients",
    "connected",
    "connect_s",
    "reconnect_s",
    "events_published",
    "deliveries",
    "lost",
    "duplicates",
    "latency_ms",
    "latency_cdf",
    "memory",
    "cpu",
    "ping_ms",
    "redis_calls",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (results_path,) = output.glob("*.json")
    return json.loads(results_path.read_text()), output, completed.stdout


def test_it_measures_every_path_with_every_field(quick_run):
    results, _, _ = quick_run
    assert [(p["path"], p["clients"]) for p in results["phases"]] == [
        ("floor", 100),
        ("sse", 100),
        ("sse-daphne", 100),
        ("ws", 100),
        ("ws-daphne", 100),
        ("pushpin-floor", 100),
        ("pushpin", 100),
    ]
    for phase in results["phases"]:
        assert phase.keys() >= PHASE_FIELDS
        assert phase["connected"] == 100
        assert phase["latency_ms"]["count"] == phase["deliveries"]
        assert phase["memory"]["per_connection_kb"] is not None
        assert all(server["threads_connected"] >= 1 for server in phase["memory"]["servers"])
        assert phase["cpu"]["ms_per_1000_deliveries"] is not None
        # Every route's events go through Redis (stored, then published) on the way out.
        assert phase["redis_calls"]["per_event"] > 0, phase["path"]
    assert {"cpu_count", "cpu_model", "memory_mb", "python", "packages"} <= results["machine"].keys()
    assert results["machine"]["packages"]["django"]


def test_it_loses_and_duplicates_nothing(quick_run):
    results, _, _ = quick_run
    for phase in results["phases"]:
        assert phase["events_published"] == results["settings"]["events"]
        if phase["path"] == "pushpin-floor":
            # The floor's do-nothing origin has no store: when Pushpin sees a gap in the
            # prev-id chain (an event published while a client's hold was being set up)
            # its recovery request gets nothing back, so the floor may miss events. It
            # must still never deliver one twice; the product's routes must lose nothing.
            assert phase["deliveries"] <= 100 * phase["events_published"]
            assert phase["duplicates"] == 0
            continue
        assert phase["deliveries"] == 100 * phase["events_published"], phase["path"]
        assert (phase["lost"], phase["duplicates"]) == (0, 0), phase["path"]


def test_it_measures_websocket_round_trips_on_both_servers(quick_run):
    results, _, _ = quick_run
    for ws in [p for p in results["phases"] if p["path"] in ("ws", "ws-daphne")]:
        assert ws["ping_ms"]["count"] == 200
        assert ws["ping_ms"]["unanswered"] == 0
        assert 0 < ws["ping_ms"]["p50"] <= ws["ping_ms"]["p99"]


def test_it_runs_each_server_where_it_says(quick_run):
    """The -daphne paths on daphne, every other product path on uvicorn (deploy/worker.py)."""
    results, _, _ = quick_run
    assert results["phases"][0]["path"] == "floor"
    servers = {p["path"]: p["server"] for p in results["phases"]}
    assert servers == {
        "floor": None,
        "sse": "uvicorn",
        "sse-daphne": "daphne",
        "ws": "uvicorn",
        "ws-daphne": "daphne",
        "pushpin-floor": None,
        "pushpin": "uvicorn",
    }


def test_it_reports_ratios_targets_a_table_and_a_plot(quick_run):
    results, output, stdout = quick_run
    floors = {r["path"]: r["floor"] for r in results["ratios_to_floor"]}
    assert floors == {
        "sse": "floor",
        "sse-daphne": "floor",
        "ws": "floor",
        "ws-daphne": "floor",
        "pushpin": "pushpin-floor",
    }
    (loss_target, *_) = results["targets"]
    assert loss_target["met"] is True
    assert "| product SSE (uvicorn) | 100 |" in stdout
    assert "| product SSE (daphne) | 100 |" in stdout
    assert "| product WebSocket (daphne) | 100 |" in stdout
    (png,) = output.glob("*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_it_charges_pushpin_for_connections_and_the_workers_for_connects_and_publishes(quick_run):
    results, _, stdout = quick_run
    (pushpin,) = [p for p in results["phases"] if p["path"] == "pushpin"]
    (sse,) = [p for p in results["phases"] if p["path"] == "sse"]
    # Memory is Pushpin's own processes (one runner and its services), not the workers'.
    (edge,) = pushpin["memory"]["servers"]
    assert edge["pid"] not in {server["pid"] for server in sse["memory"]["servers"]}
    assert pushpin["cpu"]["workers_connect_ms_per_connection"] > 0
    assert pushpin["cpu"]["workers_ms_per_event"] > 0
    assert "| product SSE via Pushpin | 100 |" in stdout


def test_it_reports_pushpin_targets_it_did_not_reach_as_not_measured(quick_run):
    results, _, _ = quick_run
    pushpin_targets = [t for t in results["targets"] if t["target"].startswith("Pushpin")]
    assert len(pushpin_targets) == 3
    assert all(t["met"] is None for t in pushpin_targets)


def test_the_history_bench_measures_every_window_and_the_writer(tmp_path, redis_url, db):
    """`python -m bench.history` (part of `make bench`), shrunk to a day of rollups."""
    from conftest import database_url_for_subprocesses

    result = subprocess.run(
        [sys.executable, "-m", "bench.history", "--days", "1", "--requests", "3", "--seconds", "2"]
        + ["--output", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url_for_subprocesses()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [path] = tmp_path.glob("history-*.json")
    report = json.loads(path.read_text())
    assert {q["window"] for q in report["queries"]} >= {"5 min", "10080 min", "43200 min"}
    assert all(q["points_per_metric"] <= 1000 for q in report["queries"])
    # A day of rollups: every window up to now has points (the zooms into 3 and 20 days ago have none).
    assert all(q["points_per_metric"] > 0 for q in report["queries"] if q["window"].endswith("min"))
    assert report["writer"]["with_writer"]["ticks"] > 0

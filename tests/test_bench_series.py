"""`python -m bench.series` end to end, tiny: its own PostgreSQL database, real Redis, two
real workers, series created through the ingest API; the results file says it all. Not a
timed test: the targets are reported, not asserted."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

ENDPOINTS = {"series", "labels", "history"}


def test_it_creates_labelled_series_through_the_api_and_measures_every_read(tmp_path):
    args = ["--metrics", "10", "--hosts", "30", "--rounds", "3", "--requests", "5", "--output", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.series", *args],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [path] = tmp_path.glob("series-*.json")
    report = json.loads(path.read_text())

    assert report["database"] == (
        "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "sqlite"
    )
    assert report["workers"] == 2
    assert report["labelled_series"] == 300
    # The bench's own first series beside them.
    assert report["live_series"] == 301
    assert report["populate"]["statuses"] == {"204": 3}
    assert report["populate"]["points"] == 900
    assert report["tracebacks"] == []
    # Results are committed: they name no folder of the machine that wrote them.
    assert str(tmp_path) not in path.read_text()
    assert {case["endpoint"] for case in report["cases"]} == ENDPOINTS
    for case in report["cases"]:
        latency = case["latency_ms"]
        assert latency["count"] == 5, case["case"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], case["case"]
        assert case["workers_cpu_ms_per_request"] >= 0
        assert isinstance(case["met"], bool)
    answered = {case["case"]: case["answered"] for case in report["cases"]}
    assert answered["one series"] == 1
    assert answered["one host, every metric (no name)"] == 10
    assert answered["20 hosts of one metric by regex"] == 20
    assert answered["every series of one metric"] == 30
    assert answered["host values of one metric"] == 30
    assert answered["dc values of one role (no name)"] == 4
    assert answered["metric names of one host"] == 10
    assert answered["1 h, one host, every metric"] == 10
    history = [case for case in report["cases"] if case["endpoint"] == "history"]
    # Three rounds of every series within the hour: every answered series has points.
    assert all(case["points"] >= case["answered"] for case in history)
    assert "series   one series" in result.stdout

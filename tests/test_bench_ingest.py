"""`python -m bench.ingest` end to end, tiny: real worker, real clients, every point counted."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_it_measures_the_api_against_its_floor_and_loses_nothing(tmp_path, redis_url):
    output = tmp_path / "ingest.json"
    args = [
        "--dashboards",
        "4",
        "--batches",
        "2",
        "--seconds",
        "1",
        "--rate",
        "20",
        "--watchers",
        "2",
        "--series",
        "50",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", *args, "--load-procs", "1", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["floor_points_per_s"] > 0
    assert results["ingest_alone"]["statuses"] == {"204": 2}
    # Tags to labels, beside the unlabelled figure of the same run.
    labelled = results["ingest_labelled"]
    assert labelled["statuses"] == {"204": 2}
    assert labelled["series"] == 50
    assert labelled["points_per_s"] > 0
    with_dashboards = results["ingest_with_dashboards"]
    assert results["dashboards_connected"] == 4
    assert with_dashboards["delivered_all"]
    counts = (with_dashboards["deliveries"], with_dashboards["lost"], with_dashboards["duplicates"])
    assert counts == (8000, 0, 0)
    for phase in ("single_api", "single_shell"):
        assert results[phase]["deliveries"] == 40, phase
        assert results[phase]["lost"] == 0 and results[phase]["duplicates"] == 0
    assert results["single_api"]["statuses"] == {"202": 20}
    assert results["tracebacks"] == []
    relay = results["delivery_floor"]
    assert relay["delivered_all"]
    assert (relay["deliveries"], relay["lost"], relay["duplicates"]) == (8000, 0, 0)

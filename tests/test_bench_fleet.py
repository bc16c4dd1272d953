"""`python -m bench.fleet --quick` end to end: the middleware's overhead measured, and
agents pushing to dashboards that each watch one host, against the floor, with every
point of each watched host counted."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_it_measures_the_middleware_and_a_small_fleet_against_the_floor(tmp_path):
    args = ["--quick", "--agents", "6", "--dashboards", "4", "--interval", "1", "--seconds", "3"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.fleet", *args, "--overhead-requests", "200", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = tmp_path.glob("fleet-*.json")
    results = json.loads(path.read_text())
    overhead = results["middleware_overhead"]
    assert overhead["with_us"]["p50"] > 0 and overhead["without_us"]["p50"] > 0
    assert overhead["requests_per_handler"] == 200 * 4
    assert [phase["path"] for phase in results["phases"]] == ["floor", "sse"]
    for phase in results["phases"]:
        assert phase["connected"] == 4 and phase["pushes_refused"] == {}, phase
        assert phase["series"] == 60 and phase["points_accepted"] > 0
        assert phase["expected_deliveries"] > 0
        assert (phase["deliveries"], phase["lost"], phase["duplicates"], phase["foreign"]) == (
            phase["expected_deliveries"],
            0,
            0,
            0,
        ), phase["path"]
        assert phase["push_to_screen_ms"]["p99"] is not None
        assert phase["server_errors"] == []
    assert set(results["ratios_to_floor"]) == {"p99_push_to_screen", "cpu_per_point"}

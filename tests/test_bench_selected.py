"""`python -m bench.selected --quick` end to end: viewers with selectors against the
filtering floor, every point of each viewer's series counted, nothing else."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, assert_cpu_ratio

pytestmark = pytest.mark.slow


def test_it_measures_selected_streams_against_the_floor_and_loses_nothing(tmp_path):
    args = ["--quick", "--viewers", "50", "--load-procs", "1", "--output", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.selected", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = tmp_path.glob("selected-*.json")
    results = json.loads(path.read_text())
    assert [phase["path"] for phase in results["phases"]] == ["floor", "sse"]
    for phase in results["phases"]:
        # 600 points over 5 groups: each viewer gets its group's 120, no other.
        assert (phase["connected"], phase["expected_deliveries"]) == (50, 50 * 120), phase["path"]
        assert (phase["deliveries"], phase["lost"], phase["duplicates"]) == (50 * 120, 0, 0), phase["path"]
        assert phase["reconnected"] == 50
        assert phase["latency_ms"]["p99"] is not None
        assert phase["server_errors"] == []
    assert set(results["ratios_to_floor"]) == {"p99_latency", "cpu_per_delivery"}
    floor, sse = results["phases"]
    assert results["ratios_to_floor"]["p99_latency"] > 0
    assert_cpu_ratio(results["ratios_to_floor"]["cpu_per_delivery"], sse, floor)

"""`python -m bench.boards` end to end, tiny: a real worker, a real Chromium, the 30-panel
dashboard drawn; the results' fields are checked, not their timings."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_it_measures_a_thirty_panel_dashboard_in_chromium(tmp_path):
    output = tmp_path / "boards.json"
    args = ["--loads", "1", "--live-seconds", "1", "--minutes", "2", "--output", str(output)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.boards", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert (results["panels"], results["series"], results["history_minutes"]) == (30, 200, 2)
    assert results["history_points"] == 200 * 12
    [load] = results["loads"]
    assert set(load) == {
        "time_to_values_ms",
        "page_cpu_ms",
        "server_cpu_ms",
        "history_requests",
        "history_sent_ms",
        "history_answered_ms",
        "history_kb",
    }
    # One history request for the whole page, however many panels.
    assert load["history_requests"] == 1
    assert load["time_to_values_ms"] > 0 and load["page_cpu_ms"] > 0
    for field in (
        "time_to_values_ms",
        "history_sent_ms",
        "history_answered_ms",
        "page_cpu_ms",
        "server_cpu_ms",
    ):
        assert set(results["load_summary"][field]) == {"p50", "max"}
    assert set(results["live"]) == {"seconds", "points_per_second", "page_cpu_percent", "server_cpu_percent"}
    assert results["live"]["points_per_second"] == 200
    assert results["tracebacks"] == []

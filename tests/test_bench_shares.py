"""`python -m bench.shares --quick` end to end: anonymous viewers of one share link,
directly and through Pushpin, against the same viewers on the plain stream; every
event counted, nothing lost or doubled, ratios reported."""

import json
import subprocess
import sys

import pytest

from bench.shares import FLOOR_OF
from conftest import ROOT, assert_cpu_ratio

pytestmark = pytest.mark.slow


def test_it_measures_a_share_links_viewers_against_the_floor_and_loses_nothing(tmp_path):
    args = ["--quick", "--viewers", "50", "--load-procs", "1", "--output", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.shares", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = tmp_path.glob("shares-*.json")
    results = json.loads(path.read_text())
    assert [phase["path"] for phase in results["phases"]] == ["sse", "share", "pushpin", "pushpin-share"]
    for phase in results["phases"]:
        assert (phase["connected"], phase["expected_deliveries"]) == (50, 50 * 20), phase["path"]
        assert (phase["deliveries"], phase["lost"], phase["duplicates"]) == (50 * 20, 0, 0), phase["path"]
        assert phase["reconnected"] == 50
        assert phase["server_errors"] == []
    assert set(results["ratios_to_floor"]) == {"share", "pushpin-share"}
    phases = {phase["path"]: phase for phase in results["phases"]}
    for path, floor_path in FLOOR_OF.items():
        ratio = results["ratios_to_floor"][path]["cpu_per_delivery"]
        assert_cpu_ratio(ratio, phases[path], phases[floor_path])

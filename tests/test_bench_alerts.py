"""`python -m bench.alert_latency --series N` end to end, tiny: one rule over N labelled
series, a share of them crossing at once, one grouped webhook per crossing and one
when they are back; the results file carries every field (timings are not judged)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_it_measures_a_fleet_under_one_rule_and_gets_one_message_per_crossing(tmp_path):
    args = ["--series", "40", "--firing", "0.1", "--cycles", "2", "--clients", "0", "--steady", "2"]
    args += ["--group-wait", "1", "--group-interval", "1", "--output", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.alert_latency", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = tmp_path.glob("alert-latency-fleet-*.json")
    results = json.loads(path.read_text())
    assert (results["kind"], results["series"], results["firing_at_once"], results["cycles"]) == (
        "alert-latency-fleet",
        40,
        4,
        2,
    )
    # Each crossing: one message listing the four, one more when they are back; one group.
    assert results["messages"] == 4
    # On DATABASE_URL's server when that is PostgreSQL, as a deployment runs it.
    postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres:", "postgresql:"))
    assert results["database"] == ("postgresql" if postgres else "sqlite")
    assert results["alerts_per_firing_message"] == [4, 4]
    assert results["alerts_per_resolved_message"] == [4, 4]
    assert len(results["group_keys"]) == 1
    assert (results["duplicates"], results["bad_signatures"]) == (0, 0)
    assert set(results["collector_cpu_ms_per_tick"]) == {"rule_disabled", "rule_enabled"}
    evaluation = results["evaluation_cpu_ms_per_tick"]
    assert set(evaluation) == {"rule_disabled", "rule_enabled", "crossing_cycles"}
    assert set(evaluation["rule_enabled"]) == {"readings", "p50", "p95", "max"}
    assert evaluation["rule_enabled"]["readings"] >= 1
    for timing in ("latency_beyond_group_wait_s", "to_decision_s", "decision_to_receipt_s", "publish_s"):
        assert set(results[timing]) == {"p50", "p95", "p99", "max"}, timing
    assert results["target_p99_s"] == 2.0 and isinstance(results["target_met"], bool)
    assert (results["group_wait_s"], results["tick_interval_s"]) == (1, 1.0)
    assert set(results["load_average"]) == {"start", "end"}

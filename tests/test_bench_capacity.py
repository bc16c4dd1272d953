"""The capacity model (bench.capacity) and the Redis commands the stream bench records for it."""

import json
import math
import os
import signal

import pytest
import redis

from bench import capacity
from bench.measure import RedisCalls, calls_between
from bench.run import redis_calls_result
from deploy.supervisor import free_port, start_redis


@pytest.fixture
def own_redis():
    """A redis-server of the test's own: no other client's commands in its counts."""
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(5)


def test_it_counts_the_commands_between_two_readings_and_not_its_own(own_redis):
    calls = RedisCalls(own_redis)
    before = calls.reading()
    client = redis.Redis.from_url(own_redis, protocol=2)
    client.set("a", 1)
    client.set("b", 2)
    client.get("a")
    client.publish("channel", "x")
    client.close()
    between = calls_between(before, calls.reading())
    calls.close()
    # A new connection's CLIENT SETINFO calls depend on redis-py's version: real, but not the point.
    assert {name: n for name, n in between.items() if not name.startswith("client")} == {
        "get": 1,
        "publish": 1,
        "set": 2,
    }


def test_it_reports_redis_commands_per_connection_and_per_event():
    result = redis_calls_result({"get": 2000, "eval": 1000}, {"publish": 50, "xadd": 50}, 1000, 50)
    assert result["per_connection"] == 3
    assert result["per_event"] == 2
    assert redis_calls_result({}, {}, 0, 0)["per_connection"] is None


# The model ------------------------------------------------------------------------------

CPU_PER_DELIVERY_S = 20e-6
CPU_PER_EVENT_S = 0.004
BASE_KB = 200_000
KB_PER_VIEWER = 30.0
CONNECT_S = 0.001


def synthetic_phase(path, clients, events=50, redis_calls=True, lost=0):
    """A results phase whose figures follow known costs exactly."""
    deliveries = clients * events
    phase = {
        "path": path,
        "clients": clients,
        "connected": clients,
        "events_published": events,
        "deliveries": deliveries,
        "lost": lost,
        "duplicates": 0,
        "cpu": {
            "server_ms": (events * CPU_PER_EVENT_S + deliveries * CPU_PER_DELIVERY_S) * 1000,
            "workers_connect_ms_per_connection": CONNECT_S * 1000,
        },
        # Two servers: their RSS adds up.
        "memory": {
            "servers": [
                {"rss_connected_kb": BASE_KB / 2 + clients * KB_PER_VIEWER / 2},
                {"rss_connected_kb": BASE_KB / 2 + clients * KB_PER_VIEWER / 2},
            ]
        },
    }
    if redis_calls:
        phase["redis_calls"] = {
            "connect": {"get": 2 * clients},
            "publish": {"publish": events, "xadd": events},
        }
    return phase


def synthetic_results(phases):
    return {"machine": {"cpu_count": 2, "memory_mb": 24_000, "cpu_model": "test"}, "phases": phases}


def write_results(folder, name, phases):
    path = folder / name
    path.write_text(json.dumps(synthetic_results(phases)))
    return path


def test_the_line_fit_recovers_a_known_intercept_and_slope():
    xs = [1000, 3000, 10_000]
    assert capacity.fit_line(xs, [5 + 0.25 * x for x in xs]) == pytest.approx((5, 0.25))
    # Below zero the intercept is noise: the slope alone carries the cost.
    assert capacity.fit_line(xs, [-5 + 0.25 * x for x in xs])[0] == 0
    # Nor a slope below zero: y does not grow with x.
    assert capacity.fit_line(xs, [20, 19, 18]) == pytest.approx((19, 0))
    # One size alone cannot tell the two apart either.
    assert capacity.fit_line([1000, 1000], [250, 250]) == pytest.approx((0, 0.25))


def test_the_fit_recovers_every_cost_from_synthetic_points():
    # Phases of different lengths too: the per-event cost is not mistaken for a per-viewer one.
    phases = [
        synthetic_phase("sse", 1000),
        synthetic_phase("sse", 3000, events=20),
        synthetic_phase("sse", 10_000),
    ]
    points = capacity.points_of(synthetic_results(phases))
    model = capacity.fit(points)["sse"]
    assert model["cpu_per_delivery_s"] == pytest.approx(CPU_PER_DELIVERY_S)
    assert model["cpu_per_event_s"] == pytest.approx(CPU_PER_EVENT_S)
    assert model["kb_per_viewer"] == pytest.approx(KB_PER_VIEWER)
    assert model["base_kb"] == pytest.approx(BASE_KB)
    assert model["workers_cpu_per_connect_s"] == pytest.approx(CONNECT_S)
    assert model["redis_calls_per_event"] == pytest.approx(2)
    assert model["redis_calls_per_delivery"] == pytest.approx(0, abs=1e-9)
    assert model["redis_calls_per_connect"] == pytest.approx(2)


def test_it_fits_only_clean_phases_of_the_three_routes():
    phases = [
        synthetic_phase("sse", 1000),
        synthetic_phase("sse", 3000, lost=7),
        synthetic_phase("floor", 1000),
    ]
    points = capacity.points_of(synthetic_results(phases))
    assert [(p["path"], p["clients"]) for p in points] == [("sse", 1000)]


def model(**costs):
    return {
        "cpu_per_delivery_s": 10e-6,
        "cpu_per_event_s": 0.0,
        "workers_cpu_per_connect_s": 0.001,
        "base_kb": 0.0,
        "kb_per_viewer": 10.0,
        "redis_calls_per_event": 2.0,
        "redis_calls_per_delivery": 0.0,
        "redis_calls_per_connect": 3.0,
        **costs,
    }


def test_the_machines_needed_round_up():
    # 2 cores at 70% over 10 µs per delivery at 10 events/s: 14,000 viewers per machine.
    one = model()
    assert capacity.project(one, 14_000, 10, 2, 24_000, 100_000)["machines"] == 1
    assert capacity.project(one, 14_001, 10, 2, 24_000, 100_000)["machines"] == 2
    projection = capacity.project(one, 1_000_000, 10, 2, 24_000, 100_000)
    assert projection["machines"] == 72  # 71.4 machines' worth
    assert projection["viewers_per_machine"] == 14_000
    # A machine's own share of each event comes off its CPU first.
    per_event = model(cpu_per_event_s=0.014)  # 0.14 of a core at 10 events/s: 12,600 viewers left
    assert capacity.project(per_event, 12_600, 10, 2, 24_000, 100_000)["machines"] == 1
    assert capacity.project(per_event, 12_601, 10, 2, 24_000, 100_000)["machines"] == 2


def test_the_resource_that_saturates_first_is_the_nearest_its_ceiling():
    assert capacity.project(model(), 100_000, 10, 2, 24_000, 100_000)["saturates"] == "CPU"
    # 10 MB a viewer: 24,000 MB holds 1,680 at 70%, where CPU holds 14,000.
    heavy = capacity.project(model(kb_per_viewer=10_240), 100_000, 10, 2, 24_000, 100_000)
    assert heavy["saturates"] == "memory"
    assert heavy["machines"] == math.ceil(100_000 / 1680)
    # 10,000 commands an event at 10 events/s is 100,000 a second: past a 100,000 ceiling at 70%.
    busy = capacity.project(model(redis_calls_per_event=10_000), 100_000, 10, 2, 24_000, 100_000)
    assert busy["saturates"] == "Redis"
    assert busy["use"]["Redis"] == pytest.approx(100_000 / 70_000)


def test_the_check_reports_the_error_in_percent(tmp_path):
    assert capacity.error_percent(110, 100) == pytest.approx(10)
    assert capacity.error_percent(75, 100) == pytest.approx(-25)
    fit_file = write_results(tmp_path, "fit.json", [synthetic_phase("sse", n) for n in (1000, 3000, 10_000)])
    args = capacity.parse_args([str(fit_file), "--check", f"{fit_file}:sse:10000"])
    output = capacity.run(args)
    # The point checked is left out of the fit, and an exact model predicts it exactly.
    assert output["models"]["sse"]["points"] == [("fit.json", 1000), ("fit.json", 3000)]
    errors = {row["figure"]: row["error_percent"] for row in output["check"]}
    assert errors == pytest.approx({"cpu_s": 0, "rss_kb": 0, "redis_publish_calls": 0}, abs=1e-6)
    # A point that costs a fifth more than the model says is 1/6 (16.7%) over-measured.
    (other,) = capacity.points_of(synthetic_results([synthetic_phase("sse", 10_000)]))
    other["cpu_s"] *= 1.2
    (cpu_row,) = [r for r in capacity.check(output["models"], [other]) if r["figure"] == "cpu_s"]
    assert cpu_row["error_percent"] == pytest.approx(-100 / 6)


def test_the_costs_table_names_each_run_and_the_sizes_it_measured_more_than_once(tmp_path, capsys):
    # `--clients ...,10000` and `--large 10000` give direct SSE two phases at 10,000 in one run.
    phases = [synthetic_phase("sse", n) for n in (1000, 3000, 10_000, 10_000)]
    fit_file = write_results(tmp_path, "twice.json", phases)
    assert capacity.main([str(fit_file)]) == 0
    printed = capsys.readouterr().out
    (row,) = [line for line in printed.splitlines() if line.startswith("| direct SSE") and "twice" in line]
    assert row.endswith("| twice at 1,000, 3,000, 10,000 (2 phases) |")


def test_runs_without_redis_commands_say_not_measured(tmp_path, capsys):
    phases = [synthetic_phase("ws", n, redis_calls=False) for n in (1000, 3000)]
    fit_file = write_results(tmp_path, "old.json", phases)
    assert capacity.main([str(fit_file)]) == 0
    printed = capsys.readouterr().out
    ws_costs = next(line for line in printed.splitlines() if line.startswith("| WebSocket") and "old" in line)
    assert ws_costs.count("not measured") == 3
    output = capacity.run(capacity.parse_args([str(fit_file)]))
    assert output["models"]["ws"]["redis_calls_per_event"] is None
    assert all("Redis" not in row["projection"]["use"] for row in output["projections"])


def test_the_committed_results_load_and_give_every_route_and_the_held_out_check(capsys):
    assert capacity.main([]) == 0
    printed = capsys.readouterr().out
    output = capacity.run(capacity.parse_args([]))
    assert set(output["models"]) == {"sse", "pushpin", "ws"}
    for m in output["models"].values():
        assert m["cpu_per_delivery_s"] > 0 and m["kb_per_viewer"] > 0
        # The fitted run recorded Redis' commands: every event is stored and published.
        assert m["redis_calls_per_event"] >= 1 and m["redis_calls_per_connect"] > 0
    checked = {(row["source"], row["path"], row["clients"]) for row in output["check"]}
    assert checked == {("20261207T033500Z.json", "sse", 10_000), ("20261207T043513Z.json", "sse", 3000)}
    fitted_sources = {source for m in output["models"].values() for source, _ in m["points"]}
    assert fitted_sources == {"20261207T071100Z.json", "20261207T033637Z.json"}
    assert len(output["projections"]) == 12
    assert "| direct SSE (uvicorn) | 1,000,000 | 10 |" in printed

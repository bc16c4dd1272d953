"""The benches for the capacity model's costs outside the stream bench: Redis's fan-out to every
subscriber (bench.fanout) and Pushpin's own CPU per connect (bench.pushpin_floor)."""

import json

import pytest

from bench import fanout

# They start a redis-server and Pushpin of their own.
pytestmark = pytest.mark.slow


def test_every_subscriber_reads_every_event_and_more_subscribers_cost_redis_more():
    results = fanout.run([1, 40], events=400, size=250, log=lambda line: None)

    one, many = results["points"]
    assert one["every_subscriber_read_every_event"] and many["every_subscriber_read_every_event"]
    assert (one["deliveries"], many["deliveries"]) == (400, 16_000)
    assert many["redis_cpu_us_per_event"] > one["redis_cpu_us_per_event"]
    assert results["fit"]["redis_cpu_us_per_event_per_subscriber"] > 0


def test_its_results_file_holds_the_fit_and_no_folder_of_the_machine(tmp_path, capsys):
    output = tmp_path / "fanout.json"
    assert fanout.main(["--subscribers", "1,5", "--events", "200", "--output", str(output)]) == 0

    text = output.read_text()
    assert str(tmp_path) not in text and str(tmp_path) not in capsys.readouterr().out
    results = json.loads(text)
    assert [point["subscribers"] for point in results["points"]] == [1, 5]
    assert set(results["fit"]) == {"redis_cpu_us_per_event", "redis_cpu_us_per_event_per_subscriber"}


def test_a_published_message_has_the_size_asked_for():
    assert abs(len(fanout.event_message(7, 250)) - 250) <= 2


def test_pushpins_connect_cost_is_written_to_a_results_file(tmp_path, capsys):
    from bench import pushpin_floor

    output = tmp_path / "pushpin-connect.json"
    assert pushpin_floor.main(["--clients", "100", "--at-once", "20", "--output", str(output)]) == 0

    results = json.loads(output.read_text())
    assert results["connected"] + sum(results["refused"].values()) == 100
    # 100 connects: Pushpin's CPU spans several 10 ms clock ticks, so it cannot read as 0.
    assert results["cpu_ms_per_connect"]["pushpin"] > 0
    assert str(tmp_path) not in capsys.readouterr().out

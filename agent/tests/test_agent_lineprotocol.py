"""Line protocol as the agent writes it, read back by the parser livedash's ingest uses."""

import line_protocol_parser
import pytest
from livedash_agent.lineprotocol import encode_line, encode_sample, encode_tags

TS = 1_733_400_000_123_456_789


def parsed(line):
    return line_protocol_parser.parse_line(line)


def test_a_plain_point_is_the_measurement_its_host_tag_and_the_value_field():
    assert encode_line("cpu", 12.5, TS, {"host": "web1"}) == f"cpu,host=web1 value=12.5 {TS}"


@pytest.mark.parametrize(
    ("tags", "expected_text"),
    [
        ({"host": "web 1"}, r"host=web\ 1"),
        ({"host": "a,b"}, r"host=a\,b"),
        ({"host": "k=v"}, r"host=k\=v"),
        ({"data center": "eu,west=1 a"}, r"data\ center=eu\,west\=1\ a"),
        ({"host": "ünïcode-名"}, "host=ünïcode-名"),
        ({"host": 'quo"te'}, 'host=quo"te'),
        ({"host": r"back\slash"}, r"host=back\slash"),
    ],
)
def test_tags_are_escaped_so_livedash_reads_them_back_exactly(tags, expected_text):
    line = encode_line("cpu", 1, TS, tags)
    assert expected_text in line
    point = parsed(line)
    assert point["tags"] == tags
    assert (point["measurement"], point["fields"], point["time"]) == ("cpu", {"value": 1.0}, TS)


def test_measurements_escape_commas_and_spaces():
    line = encode_line("disk used,root", 3, TS)
    assert line.startswith(r"disk\ used\,root value=")
    assert parsed(line)["measurement"] == "disk used,root"


def test_tags_are_sorted_and_empty_values_left_out():
    assert encode_tags({"z": "1", "a": "2", "empty": ""}) == ",a=2,z=1"


@pytest.mark.parametrize("bad", ["two\nlines", "carriage\rreturn", "ends\\"])
def test_what_line_protocol_cannot_carry_is_refused(bad):
    with pytest.raises(ValueError):
        encode_line("cpu", 1, TS, {"host": bad})
    with pytest.raises(ValueError):
        encode_line(bad, 1, TS)
    with pytest.raises(ValueError):
        encode_line("", 1, TS)


def test_numbers_keep_their_value_and_non_finite_ones_are_left_out_of_a_sample():
    lines = encode_sample(
        {"cpu": 0.1, "processes": 312, "tiny": 1e-7, "big": 1e300, "nan": float("nan"), "inf": float("inf")},
        TS,
        {"host": "h"},
    )
    values = {parsed(line)["measurement"]: parsed(line)["fields"]["value"] for line in lines}
    assert values == {"cpu": 0.1, "processes": 312.0, "tiny": 1e-7, "big": 1e300}


def test_a_bad_tag_fails_the_whole_sample_rather_than_send_it_untagged():
    with pytest.raises(ValueError):
        encode_sample({"cpu": 1}, TS, {"host": "a\nb"})

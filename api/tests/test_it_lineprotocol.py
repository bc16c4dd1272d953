import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.lineprotocol import LineError, metric_name, parse
from dashboard import series


@pytest.mark.parametrize(
    ("measurement", "field", "name"),
    [
        ("cpu", "value", "cpu"),
        ("cpu", "usage_idle", "cpu_usage_idle"),
        ("disk", "used", "disk_used"),
        ("my.metric", "value", "my.metric"),  # refused later by the name rule, by its line
    ],
)
def test_the_name_is_the_measurement_or_measurement_underscore_field(measurement, field, name):
    assert metric_name(measurement, field) == name


tag_keys = st.text(alphabet=st.sampled_from("abxyz_"), min_size=1, max_size=5).filter(
    lambda key: not key.startswith("__")
)
tag_values = st.text(alphabet=st.sampled_from("ab é,= "), min_size=1, max_size=6)


def escape(text, specials):
    for char in specials:
        text = text.replace(char, "\\" + char)
    return text


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(tag_keys, tag_values, max_size=4), st.sampled_from(["value", "used"]))
def test_tags_are_the_labels_whatever_they_hold(tags, field):
    tag_text = "".join(f",{key}={escape(value, ',= ')}" for key, value in sorted(tags.items()))
    [(name, value, ts, labels, line)] = parse(f"disk{tag_text} {field}=1.5")
    assert (name, value, ts, labels, line) == (metric_name("disk", field), 1.5, None, tags, 1)
    assert series.parse_series_id(series.series_id(name, labels)) == (name, dict(sorted(tags.items())))


def test_it_parses_lines_into_points_with_their_line_numbers():
    body = (
        "# a comment\n"
        "cpu,host=web1 usage_idle=97.5,usage_user=2i 1700000000000000000\n"
        "\n"
        'mem used=3u,ok=true,state="running"\r\n'
        "disk value=1\n"
    )
    points = parse(body)
    web1 = {"host": "web1"}
    assert points[:2] == [
        ("cpu_usage_idle", 97.5, 1700000000.0, web1, 2),
        ("cpu_usage_user", 2, 1700000000.0, web1, 2),
    ]
    # The fields of one line share its tags: the publisher checks them once.
    assert points[0][3] is points[1][3]
    # Booleans are 1/0; strings cannot be charted and are skipped.
    assert points[2:4] == [("mem_ok", 1, None, {}, 4), ("mem_used", 3, None, {}, 4)]
    assert points[4] == ("disk", 1.0, None, {}, 5)


@pytest.mark.parametrize(
    ("precision", "stamp", "seconds"),
    [
        ("s", 1700000000, 1700000000.0),
        ("ms", 1700000000123, 1700000000.123),
        ("us", 1700000000123456, 1700000000.123456),
        ("ns", 1700000000123456789, 1700000000.123456789),
    ],
)
def test_it_reads_timestamps_at_each_precision(precision, stamp, seconds):
    [(_name, _value, ts, _labels, _line)] = parse(f"m value=1 {stamp}", precision)
    assert ts == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("cpu value=1\ncpu value=\n", 2),
        ("ok value=1\n\n\ncpu,host value=1", 4),
        ("m f=NaN", 1),
        ("m f=1e999", 1),
        ("m f=1 not-a-time", 1),
        ("m f=9223372036854775808i", 1),
    ],
)
def test_it_names_the_bad_line_counted_from_one(body, line):
    with pytest.raises(LineError) as caught:
        parse(body)
    assert caught.value.number == line
    assert str(caught.value).startswith(f"line {line}: ")

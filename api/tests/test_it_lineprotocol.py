import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.lineprotocol import LineError, metric_key, parse
from dashboard.live import validate_metric_name


@pytest.mark.parametrize(
    ("measurement", "field", "tags", "key"),
    [
        ("cpu", "value", {}, "cpu"),
        ("cpu", "usage_idle", {}, "cpu__usage_idle"),
        ("cpu", "value", {"host": "web1"}, "cpu__value__host__web1"),
        ("cpu", "usage", {"host": "web1", "cpu": "cpu-total"}, "cpu__usage__cpu__cpu-total__host__web1"),
    ],
)
def test_it_maps_plain_series_to_readable_keys(measurement, field, tags, key):
    assert metric_key(measurement, field, tags) == key


def test_it_hashes_series_whose_names_are_not_plain_and_keeps_them_apart():
    dotted = metric_key("cpu", "usage", {"host": "web-1.example.com"})
    underscored = metric_key("cpu", "usage", {"host": "web-1_example_com"})
    assert dotted.startswith("cpu__usage__host__web-1_example_com___")
    assert underscored == "cpu__usage__host__web-1_example_com"
    assert dotted != underscored
    assert metric_key("my.metric", "value", {}).startswith("my_metric___")


def test_tag_order_does_not_matter_but_every_tag_does():
    a = metric_key("disk", "used", {"host": "a", "path": "b"})
    assert a == metric_key("disk", "used", {"path": "b", "host": "a"})
    assert a != metric_key("disk", "used", {"host": "a"})
    assert a != metric_key("disk", "used", {"host": "a", "path": "c"})
    # The classic trap of joining without structure: measurement or field names with the separator.
    assert metric_key("a_b", "value", {}) != metric_key("a", "b", {})
    assert metric_key("a", "b__c", {}) != metric_key("a__b", "c", {})


def test_long_series_are_cut_to_64_characters_and_stay_distinct():
    tags = {"host": "h" * 40, "region": "r" * 40}
    key = metric_key("measurement", "field", tags)
    other = metric_key("measurement", "field", {**tags, "region": "r" * 39 + "s"})
    assert len(key) <= 64 and len(other) <= 64
    assert key != other
    validate_metric_name(key)


names = st.text(alphabet=st.sampled_from("ab_-.é 1"), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(names, names, st.dictionaries(names, names, max_size=3)),
        min_size=2,
        max_size=6,
        unique_by=lambda s: (s[0], s[1], tuple(sorted(s[2].items()))),
    )
)
def test_distinct_series_never_share_a_key(series):
    keys = [metric_key(m, f, t) for m, f, t in series]
    assert len(set(keys)) == len(keys), list(zip(series, keys, strict=True))
    for key in keys:
        validate_metric_name(key)


def test_it_parses_lines_into_points_with_their_line_numbers():
    body = (
        "# a comment\n"
        "cpu,host=web1 usage_idle=97.5,usage_user=2i 1700000000000000000\n"
        "\n"
        'mem used=3u,ok=true,state="running"\r\n'
        "disk value=1\n"
    )
    points = parse(body)
    assert points[:2] == [
        ("cpu__usage_idle__host__web1", 97.5, 1700000000.0, 2),
        ("cpu__usage_user__host__web1", 2, 1700000000.0, 2),
    ]
    # Booleans are 1/0; strings cannot be charted and are skipped.
    assert points[2:4] == [("mem__ok", 1, None, 4), ("mem__used", 3, None, 4)]
    assert points[4] == ("disk", 1.0, None, 5)


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
    [(_key, _value, ts, _line)] = parse(f"m value=1 {stamp}", precision)
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

"""Series ids and storage keys: one series, one id, one key; ids round-trip."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import series

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
LABEL_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
LABEL_CHARS = LABEL_START + "0123456789"

metric_names = st.text(NAME_CHARS, min_size=1, max_size=series.METRIC_NAME_MAX_LENGTH)
label_names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(LABEL_START),
    st.text(LABEL_CHARS, max_size=series.LABEL_NAME_MAX_LENGTH - 1),
).filter(lambda name: not name.startswith("__"))
# Any text, the characters the id escapes weighted in, nothing without a UTF-8 form.
label_values = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from('\\"\n{},='),
    min_size=1,
    max_size=series.LABEL_VALUE_MAX_LENGTH,
)
label_sets = st.dictionaries(label_names, label_values, max_size=series.MAX_LABELS)
a_series = st.tuples(metric_names, label_sets)


@given(a_series)
def test_every_id_round_trips(one):
    name, labels = one
    text = series.series_id(name, labels)
    assert series.parse_series_id(text) == (name, dict(sorted(labels.items())))
    assert len(text) <= series.MAX_ID_LENGTH


@settings(max_examples=300)
@given(a_series, a_series)
def test_two_series_never_share_an_id_or_a_key(one, other):
    one_id, other_id = series.series_id(*one), series.series_id(*other)
    if (one[0], one[1]) == (other[0], other[1]):
        assert one_id == other_id
        return
    assert one_id != other_id
    assert series.storage_key(one_id) != series.storage_key(other_id)


@given(a_series)
def test_a_key_is_short_and_the_name_of_an_unlabelled_series(one):
    name, labels = one
    key = series.storage_key(series.series_id(name, labels))
    assert len(key) <= series.STORAGE_KEY_MAX_LENGTH
    if labels:
        assert key.startswith(f"{name}:") and len(key) == len(name) + 1 + 2 * series.KEY_DIGEST_BYTES
    else:
        assert key == name


@given(a_series, st.randoms())
def test_label_order_does_not_matter(one, random):
    name, labels = one
    shuffled = list(labels.items())
    random.shuffle(shuffled)
    assert series.series_id(name, dict(shuffled)) == series.series_id(name, labels)


def test_the_text_form_is_prometheus():
    assert series.series_id("cpu") == "cpu"
    assert series.series_id("cpu", {}) == "cpu"
    assert series.series_id("cpu", {"host": "web1", "dc": "eu"}) == 'cpu{dc="eu",host="web1"}'
    assert series.series_id("x", {"a": 'say "hi"\\\nbye\t'}) == 'x{a="say \\"hi\\"\\\\\\nbye\t"}'


def test_an_empty_value_is_no_label():
    assert series.series_id("cpu", {"host": ""}) == "cpu"
    assert series.validate_labels({"host": "", "dc": "eu"}) == {"dc": "eu"}


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"1host": "a"}, "must match"),
        ({"ho-st": "a"}, "must match"),
        ({"": "a"}, "must not be empty"),
        ({"__name__": "a"}, "reserved"),
        ({"__x": "a"}, "reserved"),
        ({"h" * 65: "a"}, "at most 64 characters"),
        ({"host": "v" * 257}, "at most 256 characters"),
        ({"host": 3}, "value must be a string"),
        ({"host": None}, "value must be a string"),
        ({3: "a"}, "label name must be a string"),
        ({f"l{i}": "v" for i in range(17)}, "at most 16 labels"),
        ({"host": "\ud800"}, "not valid Unicode"),
        (["host", "a"], "labels must be an object"),
    ],
)
def test_bad_labels_are_refused_by_name(labels, problem):
    with pytest.raises(ValueError, match=problem):
        series.series_id("cpu", labels)


def test_limits_are_inclusive():
    labels = {f"l{i:02d}" + "x" * 61: "\n" * 256 for i in range(16)}
    text = series.series_id("n" * 64, labels)
    assert len(text) == series.MAX_ID_LENGTH - 1  # the bound counts one comma too many
    assert series.parse_series_id(text) == ("n" * 64, labels)


@pytest.mark.parametrize("name", ["", "a b", "cpu{", "é", "a" * 65, "x:y"])
def test_bad_metric_names_are_refused(name):
    with pytest.raises(ValueError, match="metric name"):
        series.series_id(name)


@pytest.mark.parametrize(
    "text",
    [
        'cpu{host="a"',  # unterminated
        "cpu{}",  # an id leaves out the braces of no labels
        'cpu{host="a",}',  # no trailing comma in an id
        'cpu{b="1",a="2"}',  # unsorted
        'cpu{a="1",a="2"}',  # twice
        'cpu{a="x\\ty"}',  # only three escapes
        'cpu{a=""}',  # an empty value is no label
        'cpu{a="x"}x',
        'cpu{ a="x"}',
        "cpu{a='x'}",
        '{a="x"}',  # a series has a name
        'cpu{__name__="x"}',
    ],
)
def test_parse_series_id_takes_only_canonical_ids(text):
    with pytest.raises(ValueError, match="series id|metric name|label name"):
        series.parse_series_id(text)

"""Selectors: Prometheus' syntax and meaning, limits, linear-time regexes, shared decisions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import selectors, series
from dashboard.selectors import SelectorError
from dashboard.tests.test_series import a_series, label_names, label_values, metric_names

WEB1 = ("cpu", {"host": "web1", "dc": "eu"})
WEB2 = ("cpu", {"host": "web2", "dc": "us"})
DB1 = ("mem", {"host": "db1"})
PLAIN = ("cpu", {})
ALL = [WEB1, WEB2, DB1, PLAIN]


def matching(text):
    selector = selectors.parse(text)
    return [s for s in ALL if selector.matches(*s)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu", [WEB1, WEB2, PLAIN]),
        ('cpu{host="web1"}', [WEB1]),
        ('{host="web1"}', [WEB1]),
        ('{host=~"web.*"}', [WEB1, WEB2]),
        ('{host=~"web"}', []),  # the whole value
        ('{host=~"eb1"}', []),
        ('{host=~"web1|db1"}', [WEB1, DB1]),
        ('cpu{host!="web1"}', [WEB2, PLAIN]),  # no label: the value ""
        ('cpu{host!~"web.*"}', [PLAIN]),
        ('cpu{host=""}', [PLAIN]),
        ('{__name__="mem"}', [DB1]),
        ('{__name__=~"c.u"}', [WEB1, WEB2, PLAIN]),
        ('{__name__!="cpu",host=~".+"}', [DB1]),
        ('{dc=~"EU|us"}', [WEB2]),
        ('{dc=~"(?i)EU"}', [WEB1]),
        ('cpu{dc="eu",host="web1",}', [WEB1]),  # a trailing comma, as Prometheus allows
        (" cpu { dc = 'eu' } ", [WEB1]),
        ("cpu{host=`web1`}", [WEB1]),
        ('{host=~"web\\\\d"}', [WEB1, WEB2]),
        ("{host=~`web\\d`}", [WEB1, WEB2]),
    ],
)
def test_selectors_select_as_prometheus(text, expected):
    assert matching(text) == expected


def test_dot_matches_a_newline():
    assert selectors.parse('{a=~"x.y"}').matches("m", {"a": "x\ny"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "does not match the empty string"),
        ('{host=~".*"}', "does not match the empty string"),
        ('{host=""}', "does not match the empty string"),
        ('{host!~"web.*"}', "does not match the empty string"),
        ("", "expected a metric name"),
        ("   ", "expected a metric name"),
        ('cpu{__name__="cpu"}', "metric name given twice"),
        ('cpu{host="a"', "expected"),
        ('cpu{host="a}', "unterminated"),
        ("cpu{host=`a}", "unterminated"),
        ('cpu{host=="a"}', "expected a quoted value"),
        ('cpu{host~"a"}', "expected one of"),
        ('cpu{1host="a"}', "expected a label name"),
        ('cpu{host="a" dc="b"}', "expected ',' or '}'"),
        ('cpu{host="a"} x', "unexpected text"),
        ('cpu{host="\\q"}', "invalid escape"),
        ('cpu{host="\\ud800"}', "invalid escape"),
        ('cpu{host=~"("}', "invalid regex"),
        ('cpu{host=~"(a)\\\\1"}', "invalid regex"),  # backreferences: not RE2
        ('cpu{host=~"a{1001}"}', "invalid regex"),
        ("a" * 65, "at most 64 characters"),
        ("cpu.usage", "unexpected text"),
        (None, "must be a string"),
        (3, "must be a string"),
    ],
)
def test_bad_selectors_are_refused_by_name(text, problem):
    with pytest.raises(SelectorError, match=problem):
        selectors.parse(text)


def test_a_selector_error_is_a_value_error():
    assert issubclass(SelectorError, ValueError)


def test_limits():
    with pytest.raises(SelectorError, match=f"at most {selectors.MAX_SELECTOR_LENGTH} characters"):
        selectors.parse("cpu{" + " " * selectors.MAX_SELECTOR_LENGTH + "}")
    many = ",".join(f'l{i}="v"' for i in range(selectors.MAX_MATCHERS))
    with pytest.raises(SelectorError, match=f"more than {selectors.MAX_MATCHERS} matchers"):
        selectors.parse("cpu{" + many + "}")
    selectors.parse("{" + many + "}")  # the name is not needed: the limit itself is allowed
    with pytest.raises(SelectorError, match=f"regex must be at most {selectors.MAX_REGEX_LENGTH}"):
        selectors.parse('cpu{a=~"' + "a" * (selectors.MAX_REGEX_LENGTH + 1) + '"}')
    # A short pattern whose program is too big for the memory allowed.
    with pytest.raises(SelectorError, match="invalid regex"):
        selectors.parse('cpu{a=~"' + "((((((a{100}){100}){100})))" + '"}')
    # Regexes valid one by one, too large together: in one selector, and in one request.
    big = "[a-z]{1000}" * 30
    assert selectors.parse(f'{{a=~"{big}"}}').program_size > selectors.MAX_REGEX_PROGRAM // 4
    with pytest.raises(SelectorError, match="regexes too large"):
        selectors.parse("{" + ",".join(f'l{i}=~"{big}"' for i in range(4)) + "}")
    with pytest.raises(SelectorError, match="regexes too large"):
        selectors.selection([f'{{l{i}=~"{big}"}}' for i in range(4)])
    assert selectors.selection([f'{{l{i}=~"{big}"}}' for i in range(3)])
    with pytest.raises(SelectorError, match=f"at most {selectors.MAX_SELECTORS} selectors"):
        selectors.selection([f"m{i}" for i in range(selectors.MAX_SELECTORS + 1)])
    with pytest.raises(SelectorError, match="no selector"):
        selectors.selection([])


def test_the_longest_series_id_is_a_selector():
    labels = {f"l{i:02d}" + "x" * 61: "\\" * 256 for i in range(series.MAX_LABELS)}
    text = series.series_id("n" * 64, labels)
    assert str(selectors.parse(text)) == text


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "pattern", ["(a+)+b", "(a|a)*b", "(a|aa)+$b", "(.*a){20}b", "(x+x+)+y", "((a*)*)*b", "(a?){25}a{25}"]
)
def test_catastrophic_backtracking_patterns_run_in_linear_time(pattern):
    """Each of these takes a backtracking engine (Python's re) beyond any timeout on
    such values; RE2's answer is linear in the value, so thousands of them finish
    well inside the test's timeout."""
    selector = selectors.parse(f"{{v=~`{pattern}`}}")
    hostile = "a" * series.LABEL_VALUE_MAX_LENGTH
    for _ in range(2000):
        assert not selector.matches("m", {"v": hostile})
    # The matcher does the work on long inputs too (not a length-limited shortcut).
    assert selector._text and not selector.matchers[0]._regex.fullmatch("a" * 100_000)


@given(a_series)
def test_every_series_id_parses_as_a_selector_of_that_series(one):
    name, labels = one
    text = series.series_id(name, labels)
    selector = selectors.parse(text)
    assert str(selector) == text
    assert {(m.label, m.op) for m in selector.matchers} == {("__name__", "=")} | {(k, "=") for k in labels}
    assert selector.matches(name, labels)
    assert selector.metric_name == name


@given(a_series, metric_names, label_names, label_values)
def test_a_series_selector_refuses_every_other_name_or_value(one, other_name, label, value):
    name, labels = one
    selector = selectors.parse(series.series_id(name, labels))
    if other_name != name:
        assert not selector.matches(other_name, labels)
    for key in labels:
        if labels[key] != value:
            assert not selector.matches(name, {**labels, key: value})
        assert not selector.matches(name, {k: v for k, v in labels.items() if k != key})
    if label not in labels:  # more labels: still that selector's series (Prometheus' meaning)
        assert selector.matches(name, {**labels, label: value})


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_selector_error(text):
    try:
        selector = selectors.parse(text)
    except SelectorError:
        return
    # What parses has a canonical text that parses to the same selector.
    assert selectors.parse(str(selector)) == selector


def test_canonical_text_ignores_order_spaces_and_duplicates():
    one = selectors.parse('cpu{ host="a", dc=~"e.*" }')
    other = selectors.parse('{dc=~"e.*",__name__="cpu",host="a",host="a"}')
    assert one == other
    assert str(one) == 'cpu{dc=~"e.*",host="a"}'


def test_a_selection_is_the_union_and_is_shared():
    selection = selectors.selection(['cpu{host="web1"}', '{host=~"db.*"}'])
    assert [s for s in ALL if selection.matches(*s)] == [WEB1, DB1]
    same = selectors.selection(['{ host=~"db.*" }', 'cpu{host="web1"}', 'cpu{host="web1"}'])
    assert same is selection


def test_a_selection_decides_once_per_series():
    selection = selectors.Selection([selectors.parse('{host=~"web.*"}')])
    calls = []
    original = selection.matches

    def counted(name, labels):
        calls.append(name)
        return original(name, labels)

    selection.matches = counted
    web1 = series.series_id(*WEB1)
    for _ in range(5):
        assert selection.wants(web1, *WEB1)
        assert selection.wants_id(web1)
        assert not selection.wants_id("mem")
    assert calls == ["cpu", "mem"]


def test_a_selection_forgets_the_oldest_decisions_beyond_its_bound(monkeypatch, settings):
    monkeypatch.setattr(selectors, "DECISIONS_KEPT", 3)
    settings.MAX_SERIES = 1
    selection = selectors.Selection([selectors.parse("cpu")])
    for i in range(10):
        selection.wants_id(f'cpu{{i="{i}"}}')
    assert list(selection._decisions) == ['cpu{i="7"}', 'cpu{i="8"}', 'cpu{i="9"}']


def test_a_selection_keeps_a_decision_for_every_series_an_index_at_its_limit_holds(monkeypatch, settings):
    # The index at MAX_SERIES plus a collector's few series, read in turn again and
    # again: every decision is still kept when it is asked the second time.
    monkeypatch.setattr(selectors, "DECISIONS_KEPT", 10)
    settings.MAX_SERIES = 50
    selection = selectors.Selection([selectors.parse('cpu{host="h1"}')])
    decided = []
    original = selection.matches

    def counted(name, labels):
        decided.append(labels["host"])
        return original(name, labels)

    selection.matches = counted
    every = [("cpu", {"host": f"h{i}"}) for i in range(settings.MAX_SERIES + 5)]
    for _ in range(3):
        wanted = [
            labels["host"]
            for name, labels in every
            if selection.wants(series.series_id(name, labels), name, labels)
        ]
        assert wanted == ["h1"]
    assert len(decided) == len(every)


def test_wants_id_refuses_what_is_no_id():
    selection = selectors.selection(["cpu"])
    with pytest.raises(ValueError, match="series id"):
        selection.wants_id('cpu{host="a"')

"""Selectors: which series a stream, a history query, the series API or a rule wants.

A selector is a Prometheus vector selector: `name`, `name{l="v"}`, `{l=~"re"}`,
with the matchers `=`, `!=`, `=~` and `!~`. A regex matches the whole value, `.`
included newlines (as Prometheus 3), and a label a series lacks has the value `""`.
`__name__` is the metric name. As in Prometheus, a selector must have a matcher
that does not match the empty string (`{}` or `{l=~".*"}` alone would select
everything).

Parsed once (`parse`) into a `Selector`, then matched many times. Regexes are
RE2 (google-re2): matching is linear in the value, whatever the pattern, so no
selector can stall a worker; the limits below bound the parse and the compiled
programs. Every refusal is a `SelectorError` (a `ValueError`) the HTTP layers
answer with 400 `invalid`.

`Selection` is the union of a request's selectors (a series is wanted if any
selector matches it). `selection(texts)` hands every caller with the same set the
same object, whose decision per series id is cached: a worker's streams with one
selector set decide once per series, not once per stream.
"""

import functools
import threading

import re2

from dashboard import series

# A series id must parse as a selector (with room for spaces), so the longest id
# bounds the length from below.
MAX_SELECTOR_LENGTH = 16384
MAX_MATCHERS = 32
# A regex of several alternatives (a dashboard variable's values, `host=~"a|b|..."`)
# is the long case.
MAX_REGEX_LENGTH = 8192
# The memory RE2 may use for one regex's compiled program and its cache: it refuses
# larger programs at compile time.
REGEX_MAX_MEMORY = 1 << 20
# Compiling takes time in proportion to the program: the instructions all the regexes
# of one request (and so of one selector) may compile to, so that no request, however
# many selectors it sends, keeps a worker compiling.
MAX_REGEX_PROGRAM = 100_000
MAX_SELECTORS = 32
# Series ids whose decision one `Selection` remembers at least (beyond its bound, it
# forgets the oldest); see `decisions_kept`.
DECISIONS_KEPT = 10000
# Selector texts a process keeps parsed, and selector sets it keeps shared with their
# decisions (the least recently used go): together they bound a worker's memory
# whatever its clients send.
PARSED_KEPT = 1024
SELECTIONS_KEPT = 256

NAME_LABEL = "__name__"
EQUAL, NOT_EQUAL, REGEX, NOT_REGEX = "=", "!=", "=~", "!~"
# Longest first: `=~` must not be read as `=` and a value starting with `~`.
OPERATORS = (REGEX, NOT_REGEX, NOT_EQUAL, EQUAL)

_SIMPLE_ESCAPES = {
    "\\": "\\",
    '"': '"',
    "'": "'",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset(" \t\r\n")


class SelectorError(ValueError):
    """A selector that is malformed or beyond a limit; the message says which and where."""


def _regex_options():
    options = re2.Options()
    options.max_mem = REGEX_MAX_MEMORY
    options.dot_nl = True
    options.log_errors = False  # a client's bad pattern is an answer, not a log line
    return options


_OPTIONS = _regex_options()


def compile_regex(pattern):
    """The RE2 program for `pattern`, or `SelectorError` (too long, invalid, too large)."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise SelectorError(f"regex must be at most {MAX_REGEX_LENGTH} characters, got {len(pattern)}")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise SelectorError(f"invalid regex {pattern[:80]!r}: {reason}") from None


class Matcher:
    __slots__ = ("label", "op", "value", "_regex", "program_size")

    def __init__(self, label, op, value):
        self.label, self.op, self.value = label, op, value
        self._regex = compile_regex(value) if op in (REGEX, NOT_REGEX) else None
        self.program_size = self._regex.programsize if self._regex is not None else 0

    def matches_value(self, value):
        if self.op == EQUAL:
            return value == self.value
        if self.op == NOT_EQUAL:
            return value != self.value
        found = self._regex.fullmatch(value) is not None
        return found if self.op == REGEX else not found

    def matches(self, name, labels):
        value = name if self.label == NAME_LABEL else labels.get(self.label, "")
        return self.matches_value(value)

    def __str__(self):
        return f'{self.label}{self.op}"{series.escape_value(self.value)}"'

    def __repr__(self):
        return f"Matcher({self})"

    def _key(self):
        return (self.label, self.op, self.value)

    def __eq__(self, other):
        return isinstance(other, Matcher) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


class Selector:
    """One parsed selector: `matches(name, labels)`; `str()` is its canonical text."""

    __slots__ = ("matchers", "metric_name", "program_size", "_text")

    def __init__(self, matchers):
        # Canonical order (the name first, then by label), duplicates dropped: one
        # text per meaning, so equal selectors share cached decisions.
        unique = sorted(set(matchers), key=lambda m: (m.label != NAME_LABEL, m._key()))
        self.matchers = tuple(unique)
        names = [m.value for m in self.matchers if m.label == NAME_LABEL and m.op == EQUAL]
        # The one metric name it can match, if it says so (an index narrows by it).
        self.metric_name = names[0] if len(set(names)) == 1 else None
        self.program_size = sum(m.program_size for m in self.matchers)
        self._text = self._format()

    def _format(self):
        rest = list(self.matchers)
        head = ""
        if rest and rest[0].label == NAME_LABEL and rest[0].op == EQUAL:
            head = rest.pop(0).value
        if head and not rest:
            return head
        return head + "{" + ",".join(str(m) for m in rest) + "}"

    def matches(self, name, labels):
        return all(m.matches(name, labels) for m in self.matchers)

    def __str__(self):
        return self._text

    def __repr__(self):
        return f"Selector({self._text!r})"

    def __eq__(self, other):
        return isinstance(other, Selector) and self._text == other._text

    def __hash__(self):
        return hash(self._text)


class _Reader:
    """A cursor over one selector's text; errors name the offset."""

    def __init__(self, text):
        self.text, self.pos = text, 0

    def fail(self, message):
        raise SelectorError(f"selector {self.text[:80]!r}: {message} at offset {self.pos}")

    def skip_space(self):
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        self.pos = pos

    def peek(self):
        return self.text[self.pos : self.pos + 1]

    def word(self, chars):
        start, text, pos = self.pos, self.text, self.pos
        while pos < len(text) and text[pos] in chars:
            pos += 1
        self.pos = pos
        return text[start:pos]

    def operator(self):
        for op in OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        self.fail("expected one of = != =~ !~")

    def string(self):
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            self.fail("expected a quoted value")
        start = self.pos
        self.pos += 1
        text = self.text
        if quote == "`":  # raw: no escapes, as in Go
            end = text.find("`", self.pos)
            if end < 0:
                self.pos = start
                self.fail("unterminated `value`")
            value, self.pos = text[self.pos : end], end + 1
            return value
        chars = []
        while True:
            end = len(text)
            # Plain runs are copied in one slice; only escapes go one by one.
            stop = self.pos
            while stop < end and text[stop] != quote and text[stop] != "\\":
                stop += 1
            chars.append(text[self.pos : stop])
            self.pos = stop
            if stop >= end:
                self.pos = start
                self.fail("unterminated quoted value")
            if text[stop] == quote:
                self.pos += 1
                return "".join(chars)
            chars.append(self._escape())

    def _escape(self):
        text, pos = self.text, self.pos + 1
        code = text[pos : pos + 1]
        if code in _SIMPLE_ESCAPES:
            self.pos = pos + 1
            return _SIMPLE_ESCAPES[code]
        if code in _HEX_ESCAPES:
            digits = text[pos + 1 : pos + 1 + _HEX_ESCAPES[code]]
            if len(digits) == _HEX_ESCAPES[code] and all(c in "0123456789abcdefABCDEF" for c in digits):
                point = int(digits, 16)
                if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF:
                    self.pos = pos + 1 + len(digits)
                    return chr(point)
        if code in "01234567" and code:
            digits = text[pos : pos + 3]
            if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8) <= 0xFF:
                self.pos = pos + 3
                return chr(int(digits, 8))
        self.fail(f"invalid escape \\{code}")


def _too_large(program):
    return (
        f"regexes too large: they compile to more than {MAX_REGEX_PROGRAM} instructions"
        f" ({program} so far); use fewer or simpler ones"
    )


def _parse(text):
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(f"selector must be at most {MAX_SELECTOR_LENGTH} characters, got {len(text)}")
    reader = _Reader(text)
    reader.skip_space()
    matchers = []
    program = 0
    name = reader.word(_NAME_CHARS)
    if name:
        try:
            series.validate_metric_name(name)
        except ValueError as exc:
            reader.fail(str(exc))
        matchers.append(Matcher(NAME_LABEL, EQUAL, name))
        reader.skip_space()
    if reader.peek() == "{":
        reader.pos += 1
        reader.skip_space()
        while reader.peek() != "}":
            if not reader.peek():
                reader.fail("expected '}'")
            if len(matchers) >= MAX_MATCHERS:
                reader.fail(f"more than {MAX_MATCHERS} matchers")
            label = reader.word(_LABEL_CHARS)
            if not label or not series.LABEL_NAME.fullmatch(label):
                reader.fail("expected a label name")
            if name and label == NAME_LABEL:
                reader.fail("metric name given twice (before '{' and as __name__)")
            reader.skip_space()
            op = reader.operator()
            reader.skip_space()
            value = reader.string()
            try:
                matchers.append(Matcher(label, op, value))
            except SelectorError as exc:
                reader.fail(str(exc))
            program += matchers[-1].program_size
            if program > MAX_REGEX_PROGRAM:
                reader.fail(_too_large(program))
            reader.skip_space()
            if reader.peek() == ",":
                reader.pos += 1
                reader.skip_space()
            elif reader.peek() != "}":
                reader.fail("expected ',' or '}'")
        reader.pos += 1
        reader.skip_space()
    elif not name:
        reader.fail("expected a metric name or '{'")
    if reader.pos != len(text):
        reader.fail("unexpected text after the selector")
    if all(m.matches_value("") for m in matchers):
        raise SelectorError(
            f"selector {text[:80]!r} must have a matcher that does not match the empty string"
            " (it would select every series)"
        )
    return Selector(matchers)


def parse(text):
    """The `Selector` of `text`, or `SelectorError` saying what is wrong and where.
    The same text parses once per process (selectors repeat: every viewer of a
    dashboard sends the same ones)."""
    if not isinstance(text, str):
        raise SelectorError(f"selector must be a string, got {type(text).__name__}")
    return _parse_kept(text)


_parse_kept = functools.lru_cache(maxsize=PARSED_KEPT)(_parse)


def decisions_kept():
    """How many decisions a `Selection` remembers: twice MAX_SERIES (at least
    DECISIONS_KEPT). A read of the series index meets every live series in turn, up to
    MAX_SERIES of them plus the collectors' own (never refused), and a stream meets
    series that have left the index; with a bound at MAX_SERIES itself, an index at the
    limit forgot each decision just before it was asked again, and every read decided
    every series afresh."""
    from django.conf import settings

    return max(DECISIONS_KEPT, 2 * int(getattr(settings, "MAX_SERIES", 0)))


class Selection:
    """The union of selectors: `matches(name, labels)` if any of them does.

    `wants(series_id, name, labels)` is the same decision, remembered per series id
    (at most `decisions_kept()`, the oldest forgotten first)."""

    def __init__(self, selectors):
        self.selectors = tuple(selectors)
        self._decisions = {}
        self._kept = decisions_kept()
        self._lock = threading.Lock()

    def matches(self, name, labels):
        return any(s.matches(name, labels) for s in self.selectors)

    def wants(self, series_id, name, labels):
        decision = self._decisions.get(series_id)
        if decision is None:
            decision = self.matches(name, labels)
            with self._lock:
                if len(self._decisions) >= self._kept:
                    del self._decisions[next(iter(self._decisions))]
                self._decisions[series_id] = decision
        return decision

    def wants_id(self, series_id):
        """`wants` for a series known by its id alone (`ValueError` if it is no id)."""
        decision = self._decisions.get(series_id)
        if decision is None:
            name, labels = series.parse_series_id(series_id)
            decision = self.wants(series_id, name, labels)
        return decision

    def __str__(self):
        return ", ".join(str(s) for s in self.selectors)

    def __repr__(self):
        return f"Selection({[str(s) for s in self.selectors]!r})"


def parse_all(texts):
    """The selectors of one request, parsed, in canonical order without duplicates;
    `SelectorError` on the first bad one or when there are too many."""
    texts = list(texts)
    if len(texts) > MAX_SELECTORS:
        raise SelectorError(f"at most {MAX_SELECTORS} selectors a request, got {len(texts)}")
    selectors, program = set(), 0
    for text in texts:
        selector = parse(text)
        if selector not in selectors:
            selectors.add(selector)
            program += selector.program_size
            if program > MAX_REGEX_PROGRAM:
                raise SelectorError(_too_large(program))
    return tuple(sorted(selectors, key=str))


@functools.lru_cache(maxsize=SELECTIONS_KEPT)
def _shared_selection(selectors):
    return Selection(selectors)


def selection(texts):
    """The shared `Selection` of a request's selector texts (`SelectorError` if any is
    bad): requests with the same selectors, however written or ordered, get the same
    object and so share its cached decisions."""
    selectors = parse_all(texts)
    if not selectors:
        raise SelectorError("no selector given")
    return _shared_selection(selectors)


def conjoin(left, right):
    """The `Selector` of the series both `left` and `right` match, or None when none can
    be (two different metric names, two different values of one label). A matcher made
    redundant by an `=` on its label is dropped, so the result keeps one name and prints
    as a selector that parses again (`cpu{__name__=~"c.*"}` would not)."""
    matchers = set(left.matchers) | set(right.matchers)
    exact = {}
    for matcher in matchers:
        if matcher.op == EQUAL and exact.setdefault(matcher.label, matcher.value) != matcher.value:
            return None
    kept = []
    for matcher in matchers:
        if matcher.op != EQUAL and matcher.label in exact:
            if not matcher.matches_value(exact[matcher.label]):
                return None
            continue
        kept.append(matcher)
    return Selector(kept)


@functools.lru_cache(maxsize=SELECTIONS_KEPT)
def intersection(left, right):
    """The shared `Selection` of the series both selections want: each pair of their
    selectors conjoined (a union of intersections is the intersection of the unions).
    Streams of a share link with the same `match=` get the same object, and so share
    their decisions (dashboard.stream.hub.HubEvent.selected)."""
    pairs = (conjoin(a, b) for a in left.selectors for b in right.selectors)
    return _shared_selection(tuple(sorted({s for s in pairs if s is not None}, key=str)))


def known_selection(texts):
    """The shared `Selection` of selector texts this installation wrote itself (a share
    link's scope, kept in Redis for the Pushpin edge): each parsed within the usual
    limits, but as many as the dashboard has."""
    selectors = {parse(text) for text in texts}
    return _shared_selection(tuple(sorted(selectors, key=str)))

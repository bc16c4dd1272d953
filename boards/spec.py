"""The dashboard document: the one JSON shape the API, export, import and provisioning
files share (docs/dashboards.md). `validate` checks a document and returns it with
its keys in the documented order; it never adds or drops anything, so what is stored
is what was sent and export -> import gives the same dashboard.

Every refusal is an `InvalidDashboard` naming the place, the way a reader would point
at it: `panels[2].grid.w: must be at least 1`.
"""

import json
import math
import re

from dashboard import selectors, series

# A dashboard of the largest sizes below is far smaller; this bounds the work one
# document can ask of a worker (every selector is parsed) and what a row holds.
MAX_DOCUMENT_BYTES = 1 << 20
UID = re.compile(r"[a-zA-Z0-9_-]+")
MAX_VERSION = 2**31 - 1
UID_MAX_LENGTH = 40
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 4000
MAX_TAGS = 20
TAG_MAX_LENGTH = 50
MAX_VARIABLES = 20
MAX_PANELS = 200
MAX_GROUPS = 50
GROUP_NAME_MAX_LENGTH = 150  # Django's Group.name
UNIT_MAX_LENGTH = 20
MAX_DECIMALS = 10
GRID_COLUMNS = 12
# Rows are unbounded in a grid; this only keeps a typo from making a page miles long.
GRID_MAX_ROW = 1000
GRID_MAX_HEIGHT = 100
# The page's windows: a number and a unit, at most the 30 days history answers.
WINDOW = re.compile(r"([1-9][0-9]{0,5})([mhd])")
WINDOW_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
WINDOW_MAX_MINUTES = 43200

VISIBILITIES = ("private", "everyone")
PANEL_TYPES = ("timeseries", "stat", "gauge", "table")
VARIABLE = re.compile(r"\$([a-zA-Z_][a-zA-Z0-9_]*)")
# What a `$name` stands for while a selector is checked: any value, a word that is
# also a valid metric name, so `$host` may stand in a label value or in a name.
VARIABLE_PLACEHOLDER = "variable_value"

# The documented order of keys, kept when a document is stored and exported.
DOCUMENT_KEYS = (
    "uid",
    "title",
    "description",
    "tags",
    "version",
    "window",
    "variables",
    "visibility",
    "panels",
)
VARIABLE_KEYS = ("name", "label", "label_of", "match", "multi", "include_all")
PANEL_KEYS = ("id", "title", "type", "series", "unit", "decimals", "thresholds", "grid")
GRID_KEYS = ("x", "y", "w", "h")
THRESHOLD_KEYS = ("warning", "critical")


class InvalidDashboard(ValueError):
    """A document that is not a dashboard; the message starts with where."""

    def __init__(self, where, problem):
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}" if where else problem)


def _fail(where, problem):
    raise InvalidDashboard(where, problem)


def _path(where, key):
    return f"{where}.{key}" if where else key


def _object(value, where, required, optional):
    """`value` as a dict with exactly the known keys, in the documented order."""
    if not isinstance(value, dict):
        _fail(where, f"must be an object, got {kind(value)}")
    known = (*required, *optional)
    unknown = [key for key in value if key not in known]
    if unknown:
        _fail(_path(where, unknown[0]), f"unknown key (known: {', '.join(known)})")
    for key in required:
        if key not in value:
            _fail(_path(where, key), "is required")
    return value


def _ordered(value, keys):
    return {key: value[key] for key in keys if key in value}


def kind(value):
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _text(value, where, max_length, empty=False):
    if not isinstance(value, str):
        _fail(where, f"must be a string, got {kind(value)}")
    if not empty and not value.strip():
        _fail(where, "must not be empty")
    if len(value) > max_length:
        _fail(where, f"must be at most {max_length} characters, got {len(value)}")
    return value


def _integer(value, where, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"must be an integer, got {kind(value)}")
    if value < minimum:
        _fail(where, f"must be at least {minimum}, got {value}")
    if value > maximum:
        _fail(where, f"must be at most {maximum}, got {value}")
    return value


def _boolean(value, where):
    if not isinstance(value, bool):
        _fail(where, f"must be true or false, got {kind(value)}")
    return value


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(where, f"must be a finite number, got {kind(value)}")
    return value


def _list(value, where, max_items):
    if not isinstance(value, list):
        _fail(where, f"must be a list, got {kind(value)}")
    if len(value) > max_items:
        _fail(where, f"must have at most {max_items} items, got {len(value)}")
    return value


def validate_uid(uid, where="uid"):
    _text(uid, where, UID_MAX_LENGTH)
    if not UID.fullmatch(uid):
        _fail(where, f"must be letters, digits, - and _ only, got {uid!r}")
    return uid


def window_minutes(window):
    match = WINDOW.fullmatch(window)
    return int(match[1]) * WINDOW_UNIT_MINUTES[match[2]] if match else None


def _window(value, where):
    _text(value, where, 10)
    minutes = window_minutes(value)
    if minutes is None:
        _fail(where, f"must be a number and a unit m, h or d, like '1h', got {value!r}")
    if minutes > WINDOW_MAX_MINUTES:
        _fail(where, f"must be at most 30 days, got {value!r}")
    return value


def _tags(value, where):
    _list(value, where, MAX_TAGS)
    for index, tag in enumerate(value):
        _text(tag, f"{where}[{index}]", TAG_MAX_LENGTH)
        if tag in value[:index]:
            _fail(f"{where}[{index}]", f"repeats the tag {tag!r}")
    return value


def _visibility(value, where):
    if isinstance(value, str):
        if value not in VISIBILITIES:
            _fail(where, f"must be 'private', 'everyone' or {{\"groups\": [...]}}, got {value!r}")
        return value
    _object(value, where, ("groups",), ())
    groups = _list(value["groups"], f"{where}.groups", MAX_GROUPS)
    if not groups:
        _fail(f"{where}.groups", "must name at least one group")
    for index, name in enumerate(groups):
        _text(name, f"{where}.groups[{index}]", GROUP_NAME_MAX_LENGTH)
    return value


def _selector(text, where, variables):
    """Check one selector; each `$name` must be a variable and stands for a placeholder value."""
    _text(text, where, selectors.MAX_SELECTOR_LENGTH)
    for name in VARIABLE.findall(text):
        if name not in variables:
            _fail(where, f"${name} is not a variable of this dashboard")
    try:
        selectors.parse(VARIABLE.sub(VARIABLE_PLACEHOLDER, text))
    except selectors.SelectorError as exc:
        _fail(where, str(exc))
    return text


def _variables(value, where):
    _list(value, where, MAX_VARIABLES)
    names = []
    for index, variable in enumerate(value):
        at = f"{where}[{index}]"
        _object(variable, at, ("name", "label_of"), ("label", "match", "multi", "include_all"))
        name = variable["name"]
        _text(name, f"{at}.name", series.LABEL_NAME_MAX_LENGTH)
        if not series.LABEL_NAME.fullmatch(name):
            _fail(f"{at}.name", f"must match [a-zA-Z_][a-zA-Z0-9_]*, got {name!r}")
        if name in names:
            _fail(f"{at}.name", f"repeats the variable {name!r}")
        names.append(name)
        if "label" in variable:
            _text(variable["label"], f"{at}.label", TITLE_MAX_LENGTH)
        try:
            series.validate_label_name(variable["label_of"])
        except ValueError as exc:
            _fail(f"{at}.label_of", str(exc))
        if "match" in variable:
            # A variable's values narrow by the ones before it (`{host="$host"}`), never by itself.
            _selector(variable["match"], f"{at}.match", names[:-1])
        for flag in ("multi", "include_all"):
            if flag in variable:
                _boolean(variable[flag], f"{at}.{flag}")
    return names


def _grid(value, where):
    _object(value, where, GRID_KEYS, ())
    _integer(value["x"], f"{where}.x", 0, GRID_COLUMNS - 1)
    _integer(value["y"], f"{where}.y", 0, GRID_MAX_ROW)
    _integer(value["w"], f"{where}.w", 1, GRID_COLUMNS)
    _integer(value["h"], f"{where}.h", 1, GRID_MAX_HEIGHT)
    if value["x"] + value["w"] > GRID_COLUMNS:
        _fail(f"{where}.w", f"x + w must be at most {GRID_COLUMNS} columns, got {value['x']} + {value['w']}")


def _panels(value, where, variables):
    _list(value, where, MAX_PANELS)
    ids = []
    for index, panel in enumerate(value):
        at = f"{where}[{index}]"
        _object(panel, at, ("id", "title", "type", "series", "grid"), ("unit", "decimals", "thresholds"))
        _integer(panel["id"], f"{at}.id", 1, 2**31 - 1)
        if panel["id"] in ids:
            _fail(f"{at}.id", f"repeats the panel id {panel['id']}")
        ids.append(panel["id"])
        _text(panel["title"], f"{at}.title", TITLE_MAX_LENGTH, empty=True)
        if panel["type"] not in PANEL_TYPES:
            _fail(f"{at}.type", f"must be one of {', '.join(PANEL_TYPES)}, got {panel['type']!r}")
        _list(panel["series"], f"{at}.series", selectors.MAX_SELECTORS)
        if not panel["series"]:
            _fail(f"{at}.series", "must have at least one selector")
        for position, text in enumerate(panel["series"]):
            _selector(text, f"{at}.series[{position}]", variables)
        if "unit" in panel:
            _text(panel["unit"], f"{at}.unit", UNIT_MAX_LENGTH, empty=True)
        if "decimals" in panel:
            _integer(panel["decimals"], f"{at}.decimals", 0, MAX_DECIMALS)
        if "thresholds" in panel:
            thresholds = _object(panel["thresholds"], f"{at}.thresholds", (), THRESHOLD_KEYS)
            for key in thresholds:
                _number(thresholds[key], f"{at}.thresholds.{key}")
        _grid(panel["grid"], f"{at}.grid")


def validate(document):
    """The document, checked, with its keys in the documented order; `InvalidDashboard`
    otherwise. `version` is only checked to be a positive integer: whether it is the
    stored one is the store's question."""
    if not isinstance(document, dict):
        _fail("", f"a dashboard must be a JSON object, got {kind(document)}")
    # First, so that no oversized document costs the parsing of its selectors.
    size = len(json.dumps(document, separators=(",", ":"), default=str).encode())
    if size > MAX_DOCUMENT_BYTES:
        _fail("", f"a dashboard must be at most {MAX_DOCUMENT_BYTES} bytes of JSON, got {size}")
    _object(
        document,
        "",
        ("uid", "title", "panels"),
        ("description", "tags", "version", "window", "variables", "visibility"),
    )
    validate_uid(document["uid"])
    _text(document["title"], "title", TITLE_MAX_LENGTH)
    if "description" in document:
        _text(document["description"], "description", DESCRIPTION_MAX_LENGTH, empty=True)
    if "tags" in document:
        _tags(document["tags"], "tags")
    if "version" in document:
        _integer(document["version"], "version", 1, MAX_VERSION)
    if "window" in document:
        _window(document["window"], "window")
    names = []
    if "variables" in document:
        names = _variables(document["variables"], "variables")
    if "visibility" in document:
        _visibility(document["visibility"], "visibility")
    _panels(document["panels"], "panels", names)
    return ordered_document(document)


def ordered_document(document):
    """A valid document with every key in the documented order (PostgreSQL's jsonb keeps
    its own order; exports and answers read the same whatever the database)."""
    ordered = _ordered(document, DOCUMENT_KEYS)
    if "variables" in ordered:
        ordered["variables"] = [_ordered(variable, VARIABLE_KEYS) for variable in ordered["variables"]]
    panels = []
    for panel in ordered["panels"]:
        panel = _ordered(panel, PANEL_KEYS)
        if "thresholds" in panel:
            panel["thresholds"] = _ordered(panel["thresholds"], THRESHOLD_KEYS)
        panel["grid"] = _ordered(panel["grid"], GRID_KEYS)
        panels.append(panel)
    ordered["panels"] = panels
    return ordered

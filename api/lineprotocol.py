"""InfluxDB line protocol in, livedash series points out.

Parsing is line_protocol_parser's; this module numbers the lines, converts the
timestamps and maps each field of a line to one series (the contract's mapping,
shown with examples in docs/api.md):

- the metric name is the measurement when the field is `value` (`cpu value=1` ->
  `cpu`), else `<measurement>_<field>` (`cpu usage_idle=97` -> `cpu_usage_idle`);
- the tags are the series' labels (`cpu,host=web1 usage=12` -> `cpu_usage{host="web1"}`).

Names and labels follow the series rules (dashboard.series); the publisher checks
them, and a line that breaks them is refused by its number, so nothing is renamed
behind the sender's back.
"""

import line_protocol_parser

PRECISIONS = {"ns": 10**9, "us": 10**6, "ms": 10**3, "s": 1}
# The field whose series is named after the measurement alone.
VALUE_FIELD = "value"


class LineError(ValueError):
    def __init__(self, number, message):
        super().__init__(f"line {number}: {message}")
        self.number = number


def metric_name(measurement, field):
    """The metric name of one field of a measurement (see the module docstring)."""
    return measurement if field == VALUE_FIELD else f"{measurement}_{field}"


def parse(text, precision="ns"):
    """Points `(name, value, ts, labels, line_number)` from a line protocol body; the
    fields of one line share one `labels` dict (its tags).

    Integer, unsigned, float and boolean (as 1 or 0) fields become points; string
    fields are skipped, as the charts cannot draw them. Raises `LineError` naming
    the first bad line, counted from 1."""
    divisor = PRECISIONS[precision]
    points = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            parsed = line_protocol_parser.parse_line(line)
        except line_protocol_parser.LineFormatError as exc:
            raise LineError(number, str(exc).rstrip(".") + f": {_shorten(line)!r}") from None
        if parsed is None:  # a comment
            continue
        timestamp = parsed["time"]
        ts = None if timestamp is None else timestamp / divisor
        for field, value in sorted(parsed["fields"].items()):
            if isinstance(value, str):
                continue
            name = metric_name(parsed["measurement"], field)
            points.append(
                (name, int(value) if isinstance(value, bool) else value, ts, parsed["tags"], number)
            )
    return points


def _shorten(line, limit=80):
    return line if len(line) <= limit else line[:limit] + "…"

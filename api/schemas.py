"""The API's request and response bodies (pydantic), and their OpenAPI descriptions."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from dashboard.live import validate_number

# curl's default (form-urlencoded) and an absent type too: InfluxDB itself reads any
# body as line protocol, and scripts written for it send whatever their tool sends.
LINE_PROTOCOL_TYPES = {"text/plain", "", "application/octet-stream", "application/x-www-form-urlencoded"}


def _number(value, info):
    # The same rule and message as publish_metric's: no strings, no booleans.
    return validate_number(value, info.field_name)


Number = Annotated[float, PlainValidator(_number), WithJsonSchema({"type": "number"})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Point(Strict):
    name: str = Field(description="metric key: letters, digits, - and _, at most 64 characters")
    value: Number
    ts: Number | None = Field(None, description="unix seconds; default: now")
    labels: dict | None = Field(
        None,
        description="the series' labels, {name: text}: names [a-zA-Z_][a-zA-Z0-9_]* (at most 64"
        " characters, not starting with __), values at most 256 characters, at most 16 labels",
        json_schema_extra={"additionalProperties": {"type": "string"}},
    )


class Batch(Strict):
    points: list[Point]


class NotificationIn(Strict):
    title: str
    body: str = ""
    level: str = Field("info", description="info, success, warning or error")
    link: str | None = None
    user: str | None = Field(None, description="a username")
    group: str | None = Field(None, description="a group name")
    all: bool | None = Field(None, description="true: everyone")

    @model_validator(mode="after")
    def one_audience(self):
        given = [name for name in ("user", "group") if getattr(self, name) is not None]
        if self.all:
            given.append("all")
        if len(given) != 1:
            raise ValueError('give exactly one of "user", "group" or "all": true')
        return self


class Accepted(BaseModel):
    accepted: int


class Created(BaseModel):
    id: int


def describe_errors(errors, limit=3):
    """pydantic's errors as one line: 'points[3].value: a number must be finite, got nan'."""
    described = []
    for error in errors[:limit]:
        path = ""
        for part in error.get("loc", ()):
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        if error.get("type") == "model_type":
            message = "must be a JSON object"
        described.append(f"{path or 'the body'}: {message}")
    if len(errors) > limit:
        described.append(f"and {len(errors) - limit} more")
    return "; ".join(described)


def _json_body(schema):
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_point = Point.model_json_schema()
METRICS_BODY = _json_body(
    {
        "oneOf": [
            _point,
            {
                "type": "object",
                "properties": {"points": {"type": "array", "items": _point}},
                "required": ["points"],
                "additionalProperties": False,
            },
        ]
    }
)
NOTIFICATION_BODY = _json_body(NotificationIn.model_json_schema())
WRITE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "cpu,host=web1 usage_idle=97.5,usage_user=1.2 1700000000000000000",
            }
        },
    }
}

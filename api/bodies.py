"""Reading an API request's body within the limits: media type, size, gzip, JSON.

Each failure is the contract's ApiError, raised before anything is published.
"""

import json
import math
import zlib

from django.conf import settings

from api.auth import ApiError


def invalid(detail):
    return ApiError(400, "invalid", detail)


def too_large(detail):
    return ApiError(413, "too_large", detail)


def media_type(request):
    return request.content_type.split(";")[0].strip().lower() if request.content_type else ""


def require_media_type(request, accepted, described):
    if media_type(request) not in accepted:
        given = media_type(request) or "none"
        raise ApiError(415, "unsupported_media_type", f"send {described} (Content-Type was {given})")


def _body_limit_error(limit, what="the body"):
    return too_large(f"{what} is over API_MAX_BODY_BYTES ({limit} bytes)")


def read_body(request):
    """The request body as bytes, gunzipped when `Content-Encoding: gzip`; 413 past the limit."""
    limit = settings.API_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _body_limit_error(limit)
    # read() rather than .body: .body refuses anything past DATA_UPLOAD_MAX_MEMORY_SIZE
    # (2.5 MB, a form limit) and has no limit at all on a body without a length.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise _body_limit_error(limit)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise ApiError(415, "unsupported_media_type", f"Content-Encoding {encoding!r}: send gzip or nothing")
    return gunzip(raw, limit)


def gunzip(raw, limit):
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise invalid(f"the gzip body is corrupt: {exc}") from None
    if len(body) > limit or decompressor.unconsumed_tail:
        raise _body_limit_error(limit, "the body after decompression")
    if not decompressor.eof:
        raise invalid("the gzip body is truncated")
    return body


def decode_text(body):
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"the body is not UTF-8 (byte {exc.start})") from None


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def parse_json(body):
    """The JSON value of the body; NaN, Infinity and numbers past float range are refused."""
    text = decode_text(body)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise invalid("the JSON is nested too deeply") from None
    except ValueError as exc:
        raise invalid(f"the body is not valid JSON: {exc}") from None

"""Keeping share-link tokens private: a token is the whole credential of a link, so it
must not reach logs, nor another site in a `Referer`.

- `mask(text)` hides the token in `share=TOKEN` (a stream's or history's query) and in
  `/s/TOKEN/` (the share page's path);
- `MaskShareTokens`, the logging filter every handler of settings.LOGGING carries: it
  masks a record's whole message (Django's "Not Found: /s/...", uvicorn's access lines),
  and deploy.worker masks daphne's access log with `mask` too;
- `ShareReferrerPolicy`, the middleware that sends `Referrer-Policy: no-referrer` on
  every `/s/` answer (SecurityMiddleware's site-wide policy only where none is set), so
  a link followed from a shared page does not carry its address away.
"""

import logging
import re

SHARE_PATH_PREFIX = "/s/"
MASK = "***"
# The query parameter (raw or percent-encoded `=`), and the page's path segment.
_QUERY = re.compile(r"(?<![A-Za-z0-9_])(share(?:=|%3[Dd]))[^&\s\"']+")
_PATH = re.compile(r"(/s/)[^/?#\s\"']+")


def mask(text):
    """`text` with every share token in it replaced by MASK."""
    if "share" not in text and "/s/" not in text:
        return text
    return _PATH.sub(rf"\g<1>{MASK}", _QUERY.sub(rf"\g<1>{MASK}", text))


class MaskShareTokens(logging.Filter):
    """Masks share tokens in a record's message (its arguments formatted first)."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:
            return True  # a record that cannot format is logging's own error to report
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class ShareReferrerPolicy:
    """`Referrer-Policy: no-referrer` on every answer under `/s/`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(SHARE_PATH_PREFIX):
            response["Referrer-Policy"] = "no-referrer"
        return response

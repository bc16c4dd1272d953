"""Kiosk pages may be framed by this site, and only by it.

Every page is `X-Frame-Options: DENY` and `frame-ancestors 'none'` (config/settings.py);
a playlist (`/playlists/UID/`) shows dashboards in kiosk mode inside its own iframes,
so the kiosk form of a dashboard or share page (`?kiosk=1` on `/d/` or `/s/`) is
allowed a same-origin parent: `SAMEORIGIN` and `frame-ancestors 'self'`. No other
site may frame them, and no other page changes.

It must sit after django-csp's middleware in MIDDLEWARE (so it sees the answer first)
and Django's XFrameOptionsMiddleware leaves a header already set alone.
"""

KIOSK_PREFIXES = ("/d/", "/s/")


def is_kiosk(request):
    return request.path.startswith(KIOSK_PREFIXES) and request.GET.get("kiosk") == "1"


class KioskFraming:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if is_kiosk(request):
            response["X-Frame-Options"] = "SAMEORIGIN"
            replace = dict(getattr(response, "_csp_replace", None) or {})
            replace["frame-ancestors"] = ["'self'"]
            response._csp_replace = replace
        return response

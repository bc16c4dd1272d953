"""The requests served without Django's request handler, and for every middleware in
settings.MIDDLEWARE what stands in for it on each of them.

Three paths skip the chain, each for a measured cost (docs/performance.md):
- API pushes (`api.handler.TokenRequests`): the API's token endpoints, through a
  handler of their own whose chain holds only the middlewares marked RUNS here;
- direct streams (`dashboard.stream.app.DirectStreams`): a stream GET decided, then
  written straight to the server;
- proxied connects (`dashboard.stream.grip.ProxiedStreamConnects`): the stream
  connects Pushpin signed and forwards.

dashboard/tests/test_bypasses.py fails when settings.MIDDLEWARE holds a middleware
without a row here, so one added later cannot silently skip these paths: whoever
adds it decides, in its row, what each path does with it (and, where a stream needs
it, calls it on that path).
"""

from typing import NamedTuple


class StandIns(NamedTuple):
    """What takes a middleware's place on each path that bypasses Django's handler."""

    api_pushes: str
    direct_streams: str
    proxied_connects: str


# On API pushes: the middleware is in their handler's chain, whole.
RUNS = "runs"

MIDDLEWARE_STAND_INS = {
    # In settings.MIDDLEWARE when GRIP_URL is set.
    "django_grip.GripMiddleware": StandIns(
        api_pushes=RUNS,
        direct_streams="a GET without Pushpin's signature; nothing for GRIP to do",
        proxied_connects="its request and response steps run here",
    ),
    "django.middleware.security.SecurityMiddleware": StandIns(
        api_pushes=RUNS,
        direct_streams="its request (HTTPS redirect) and response steps run here",
        proxied_connects="its response step runs here",
    ),
    "dashboard.privacy.ShareReferrerPolicy": StandIns(
        api_pushes="acts on /s/ pages only",
        direct_streams="acts on /s/ pages only; a stream is no page",
        proxied_connects="acts on /s/ pages only; a stream is no page",
    ),
    "servestatic.middleware.ServeStaticMiddleware": StandIns(
        api_pushes="serves /static/ only",
        direct_streams="serves /static/ only",
        proxied_connects="serves /static/ only",
    ),
    "django.contrib.sessions.middleware.SessionMiddleware": StandIns(
        api_pushes="a token request has no session",
        direct_streams="session read with the async API, never saved",
        proxied_connects="session read with the async API, never saved",
    ),
    "django.middleware.locale.LocaleMiddleware": StandIns(
        api_pushes="API errors are codes and English details",
        direct_streams="picks a language for pages; a stream carries no text",
        proxied_connects="picks a language for pages; a stream carries no text",
    ),
    "django.middleware.common.CommonMiddleware": StandIns(
        api_pushes="the paths are exact; no slash redirects",
        direct_streams="its response step runs on refusals (Content-Length); the path is exact",
        proxied_connects="its response step runs here (Content-Length)",
    ),
    "django.middleware.csrf.CsrfViewMiddleware": StandIns(
        api_pushes="the views are CSRF-exempt: the token is a header",
        direct_streams="no CSRF check for a GET, and no token is set",
        proxied_connects="no CSRF check for a GET, and no token is set",
    ),
    "django.contrib.auth.middleware.AuthenticationMiddleware": StandIns(
        api_pushes="no session user; the token is checked",
        direct_streams="request.user, lazily, as it sets it",
        proxied_connects="request.user, lazily, as it sets it",
    ),
    "audit.context.AuditContextMiddleware": StandIns(
        api_pushes="names a session user making a change; there is none",
        direct_streams="names who makes a change; a stream GET changes nothing",
        proxied_connects="names who makes a change; a stream GET changes nothing",
    ),
    "accounts.middleware.SessionActivityMiddleware": StandIns(
        api_pushes="tracks signed-in sessions; a token request has none",
        direct_streams="a session's last seen comes from its page requests",
        proxied_connects="a session's last seen comes from its page requests",
    ),
    "allauth.account.middleware.AccountMiddleware": StandIns(
        api_pushes="keeps a sign-in flow's state; a token request signs nobody in",
        direct_streams="a stream GET is never part of a sign-in flow",
        proxied_connects="a stream GET is never part of a sign-in flow",
    ),
    "accounts.middleware.MFARequiredMiddleware": StandIns(
        api_pushes="a token, not a signed-in person: MFA_REQUIRED is about people",
        direct_streams="the page that opens a stream was reached through it first",
        proxied_connects="the page that opens a stream was reached through it first",
    ),
    "django.contrib.messages.middleware.MessageMiddleware": StandIns(
        api_pushes="no messages are read or stored",
        direct_streams="no messages are read or stored by a stream",
        proxied_connects="no messages are read or stored by a stream",
    ),
    "django.middleware.clickjacking.XFrameOptionsMiddleware": StandIns(
        api_pushes="JSON answers are never framed",
        direct_streams="an event stream is never framed, so no frame header",
        proxied_connects="its response step runs here",
    ),
    "csp.middleware.CSPMiddleware": StandIns(
        api_pushes="a policy governs documents; these answer JSON",
        direct_streams="a policy governs documents; an event stream loads nothing",
        proxied_connects="a policy governs documents; an event stream loads nothing",
    ),
    "boards.framing.KioskFraming": StandIns(
        api_pushes="acts on kiosk pages (/d/, /s/) only",
        direct_streams="acts on kiosk pages (/d/, /s/) only; a stream is no page",
        proxied_connects="acts on kiosk pages (/d/, /s/) only; a stream is no page",
    ),
    "axes.middleware.AxesMiddleware": StandIns(
        api_pushes="acts on login attempts only",
        direct_streams="acts on login attempts only; a stream GET authenticates nothing",
        proxied_connects="acts on login attempts only; a stream GET authenticates nothing",
    ),
}


def without_a_row(middleware):
    """The middlewares of `middleware` (dotted paths) that nobody reviewed for the bypasses."""
    return [path for path in middleware if path not in MIDDLEWARE_STAND_INS]


def api_push_chain(middleware):
    """The middlewares of `middleware` that the API pushes' handler runs: those marked
    RUNS, and any without a row (running one is never less safe than skipping it)."""
    return [
        path
        for path in middleware
        if path not in MIDDLEWARE_STAND_INS or MIDDLEWARE_STAND_INS[path].api_pushes == RUNS
    ]

"""Who may do what: the access matrix, as data.

tests/test_access_matrix.py checks every cell against a real web worker, and
docs/security.md prints this same table; regenerate it after a change with

    .venv/bin/python -m tests.access_matrix

(a test fails while the page and the table disagree).
"""

import sys
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"

# Column: persona key, heading, who that is.
PERSONAS = [
    ("anonymous", "anonymous", "not logged in"),
    ("charlie", "no permission", "logged in, no permissions (charlie)"),
    ("alice", "viewer (owner)", "`dashboard.view_metric`; owns the probed notification and `user-<id>`"),
    ("bob", "other viewer", "`dashboard.view_metric`, another user than the owner (bob)"),
    ("staff", "staff", "`is_staff`, `dashboard.view_metric` + `dashboard.change_metric`"),
    (
        "operator",
        "Operator",
        "the `Operator` role (group): dashboards, sampling, acknowledging and silencing",
    ),
    ("admin_role", "Admin", "the `Admin` role (group): every permission, and so `is_staff`"),
    ("admin", "superuser", "`is_superuser`"),
]
PERSONA_KEYS = [key for key, _, _ in PERSONAS]

# Outcomes.
OK = "200"
LOGIN = "302 → login"
FORBIDDEN = "403"
HELLO = "hello"
REFUSED = "refused (403)"
PONG = "pong"
ACK = "ack"
SNAPSHOT = "snapshot"
ERR_FORBIDDEN = "error `forbidden`"
ERR_NOT_FOUND = "error `not_found`"

LOGGED_IN = ["charlie", "alice", "bob", "staff", "operator", "admin_role", "admin"]
VIEWERS = ["alice", "bob", "staff", "operator", "admin_role", "admin"]
CONTROLLERS = ["staff", "operator", "admin_role", "admin"]
STAFF = ["staff", "admin_role", "admin"]


def cells(default, **overrides):
    """A row's outcomes: `default` everywhere, `overrides` for named personas."""
    return {persona: overrides.get(persona, default) for persona in PERSONA_KEYS}


def only(personas, allowed, otherwise):
    return {persona: allowed if persona in personas else otherwise for persona in PERSONA_KEYS}


@dataclass(frozen=True)
class Row:
    label: str  # as printed in docs/security.md
    kind: str  # http, sse, sse-origin ("ORIGIN CHANNELS"), ws-connect, ws-command
    target: str  # path, channel list, or command (placeholders: {alice}, {own}, {notification})
    expected: dict


# Anonymous cells of WebSocket command rows are "refused": the handshake fails, so no command runs.
_ws_anonymous = {"anonymous": REFUSED}
CONTROL = only(CONTROLLERS, ACK, ERR_FORBIDDEN) | _ws_anonymous
# Acknowledge and silence take `alerts.change_alertrule`: the Operator and Admin roles, the superuser.
ALERTS = only(["operator", "admin_role", "admin"], ACK, ERR_FORBIDDEN) | _ws_anonymous

ROWS = [
    Row("`GET /` (dashboard page)", "http", "/", only(LOGGED_IN, OK, LOGIN)),
    Row(
        "`GET /api/metrics/history/`",
        "http",
        "/api/metrics/history/?minutes=5",
        only(VIEWERS, OK, FORBIDDEN),
    ),
    Row("SSE `metrics`", "sse", "metrics", only(VIEWERS, OK, FORBIDDEN)),
    Row(
        "SSE `user-<own id>` (anonymous: any id)",
        "sse",
        "user-{own}",
        only(LOGGED_IN, OK, FORBIDDEN),
    ),
    Row("SSE `user-<alice's id>`", "sse", "user-{alice}", only(["alice"], OK, FORBIDDEN)),
    Row(
        "SSE `metrics` + `user-<alice's id>` together",
        "sse",
        "metrics,user-{alice}",
        only(["alice"], OK, FORBIDDEN),
    ),
    Row(
        "`GET /api/v1/docs` (API page; the API itself takes tokens only)",
        "http",
        "/api/v1/docs",
        only(LOGGED_IN, OK, LOGIN),
    ),
    Row("`GET /api/v1/openapi.json`", "http", "/api/v1/openapi.json", only(LOGGED_IN, OK, LOGIN)),
    Row("`GET /admin/`", "http", "/admin/", only(STAFF, OK, LOGIN)),
    Row(
        "`GET /admin/auth/user/` (user admin)",
        "http",
        "/admin/auth/user/",
        cells(LOGIN, staff=FORBIDDEN, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /admin/notifications/notification/`",
        "http",
        "/admin/notifications/notification/",
        cells(LOGIN, staff=FORBIDDEN, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /admin/notifications/delivery/` (delivery log)",
        "http",
        "/admin/notifications/delivery/",
        cells(LOGIN, staff=FORBIDDEN, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /admin/audit/auditentry/` (audit log)",
        "http",
        "/admin/audit/auditentry/",
        cells(LOGIN, staff=FORBIDDEN, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /notifications/channels/` (own delivery channels)",
        "http",
        "/notifications/channels/",
        only(LOGGED_IN, OK, FORBIDDEN),
    ),
    # Dashboards: a session by visibility (or an API token with the `dashboards` scope,
    # boards/tests/test_it_api.py). A dashboard one may not see is answered as one that does not exist.
    Row("`GET /api/v1/dashboards` (the list)", "http", "/api/v1/dashboards", cells(OK, anonymous="401")),
    Row(
        "`GET /api/v1/dashboards/<alice's private one>`",
        "http",
        "/api/v1/dashboards/alice-private",
        # The Operator and Admin roles hold boards.change_dashboard, which edits every dashboard.
        cells("404", anonymous="401", alice=OK, operator=OK, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /api/v1/dashboards/<visible to everyone>`",
        "http",
        "/api/v1/dashboards/for-everyone",
        only(VIEWERS, OK, "404") | {"anonymous": "401"},
    ),
    Row(
        "`GET /api/v1/dashboards/<visible to group ops (charlie)>`",
        "http",
        "/api/v1/dashboards/for-ops",
        cells("404", anonymous="401", charlie=OK, alice=OK, operator=OK, admin_role=OK, admin=OK),
    ),
    # The same rule on the pages: a dashboard one may not see is a 404 page.
    Row("`GET /dashboards/` (the list page)", "http", "/dashboards/", only(LOGGED_IN, OK, LOGIN)),
    Row("`GET /hosts/` (the hosts page)", "http", "/hosts/", cells(OK, anonymous=LOGIN, charlie=FORBIDDEN)),
    Row(
        "`GET /d/<alice's private one>/`",
        "http",
        "/d/alice-private/",
        cells("404", anonymous=LOGIN, alice=OK, operator=OK, admin_role=OK, admin=OK),
    ),
    Row(
        "`GET /d/<visible to everyone>/`",
        "http",
        "/d/for-everyone/",
        only(VIEWERS, OK, "404") | {"anonymous": LOGIN},
    ),
    Row(
        "`GET /d/<visible to group ops (charlie)>/`",
        "http",
        "/d/for-ops/",
        cells("404", anonymous=LOGIN, charlie=OK, alice=OK, operator=OK, admin_role=OK, admin=OK),
    ),
    # Share links (docs/sharing.md): whoever may edit the dashboard lists and makes them;
    # a token that names no live link opens nothing, for anyone, session or not.
    Row(
        "`GET /api/v1/dashboards/<alice's private one>/shares`",
        "http",
        "/api/v1/dashboards/alice-private/shares",
        cells("404", anonymous="401", alice=OK, operator=OK, admin_role=OK, admin=OK),
    ),
    Row(
        "SSE `metrics` with `share=` a token of no live link",
        "http",
        "/events/?channel=metrics&share=no-such-link-0123456789abcdef0123456789abc",
        cells(FORBIDDEN),
    ),
    Row(
        "`GET /api/metrics/history/?share=` a token of no live link",
        "http",
        "/api/metrics/history/?minutes=5&share=no-such-link-0123456789abcdef0123456789abc",
        cells(FORBIDDEN),
    ),
    Row(
        "`GET /s/<a token of no live link>/` (the share page)",
        "http",
        "/s/no-such-link-0123456789abcdef0123456789abc/",
        cells("404"),
    ),
    Row("`GET /healthz`", "http", "/healthz", cells(OK)),
    # A session is no credential for /metrics: only an API token with the scrape scope.
    Row("`GET /metrics` (session, no API token)", "http", "/metrics", cells("401")),
    Row("WebSocket `/ws/dashboard/`", "ws-connect", "same-origin", only(LOGGED_IN, HELLO, REFUSED)),
    Row("WebSocket from another origin", "ws-connect", "http://evil.example", cells(REFUSED)),
    # The same host on another port or scheme is another origin (cross-site WebSocket hijacking).
    Row("WebSocket from `http://127.0.0.1:9999`", "ws-connect", "http://127.0.0.1:9999", cells(REFUSED)),
    Row("WebSocket from `https://localhost:3000`", "ws-connect", "https://localhost:3000", cells(REFUSED)),
    Row("WebSocket from `ftp://127.0.0.1`", "ws-connect", "ftp://127.0.0.1", cells(REFUSED)),
    Row(
        "WebSocket from `chrome-extension://127.0.0.1`",
        "ws-connect",
        "chrome-extension://127.0.0.1",
        cells(REFUSED),
    ),
    Row(
        "SSE `metrics` from `http://127.0.0.1:9999`",
        "sse-origin",
        "http://127.0.0.1:9999 metrics",
        only(["anonymous"], FORBIDDEN, FORBIDDEN),
    ),
    Row("WS `ping`", "ws-command", '{"type": "ping"}', cells(PONG, **_ws_anonymous)),
    Row(
        "WS `set_interval` {seconds: 2}",
        "ws-command",
        '{"type": "set_interval", "seconds": 2}',
        CONTROL,
    ),
    Row("WS `pause`", "ws-command", '{"type": "pause"}', CONTROL),
    Row("WS `resume`", "ws-command", '{"type": "resume"}', CONTROL),
    Row(
        "WS `snapshot` (latest metric values)",
        "ws-command",
        '{"type": "snapshot"}',
        only(VIEWERS, SNAPSHOT, ERR_FORBIDDEN) | _ws_anonymous,
    ),
    Row(
        "WS `mark_read` of alice's notification",
        "ws-command",
        '{"type": "mark_read", "id": {notification}}',
        only(["alice"], ACK, ERR_NOT_FOUND) | _ws_anonymous,
    ),
    Row(
        'WS `mark_read` "all" (own notifications)',
        "ws-command",
        '{"type": "mark_read", "id": "all"}',
        cells(ACK, **_ws_anonymous),
    ),
    Row(
        "WS `ack_alert` {rule} (a firing rule)", "ws-command", '{"type": "ack_alert", "rule": {rule}}', ALERTS
    ),
    Row(
        "WS `silence_alert` {rule, minutes: 60}",
        "ws-command",
        '{"type": "silence_alert", "rule": {rule}, "minutes": 60}',
        ALERTS,
    ),
    Row("WS `unsilence_alert` {rule}", "ws-command", '{"type": "unsilence_alert", "rule": {rule}}', ALERTS),
]


INTRO = """\
# Security: who may do what

Generated from `tests/access_matrix.py` by `.venv/bin/python -m tests.access_matrix`;
`tests/test_access_matrix.py` checks every cell against a real web worker (real
session cookies, real sockets) and fails when this page and the table disagree.

Principles: anonymous users get nothing but the login page and `/healthz`; a user
never sees another user's data (their `user-<id>` stream, their notifications);
changing the collector needs `dashboard.change_metric`; a dashboard is seen by its
owner, by everyone with `dashboard.view_metric` or by the members of its groups, as
its visibility says, and changed by its owner and holders of `boards.change_dashboard`
(alice owns the probed ones; charlie is in the group `ops`); acknowledging and
silencing an alert rule need `alerts.change_alertrule`; a user sees and
pauses only their own delivery channels; the WebSocket and the
SSE stream accept only pages of the site's exact origin (`scheme://host:port`, as
requested or listed in `CSRF_TRUSTED_ORIGINS`: cross-site WebSocket hijacking).

## Roles

A migration creates three groups, listed in the admin with the other groups
(`accounts/roles.py` is where what each holds is written):

| role | holds |
|---|---|
| `Viewer` | `dashboard.view_metric`: sees dashboards |
| `Operator` | Viewer's, plus `dashboard.change_metric` (sampling), `alerts.view_alertrule` and `alerts.change_alertrule` (acknowledge, silence), `boards.view_dashboard` and `boards.change_dashboard` (edit dashboards) where that app is installed |
| `Admin` | every permission; joining the group sets `is_staff`, leaving it clears it (a superuser stays staff) |

Each `migrate` gives the roles what they lack of that list (a permission removed by
hand from a role comes back); a deployment that wants other sets makes groups of
its own. Changing a user's roles is a change of groups, so it closes their streams
and sockets like any other revocation.

## Personas

| column | who |
|---|---|
"""

LEGEND = """
## Outcomes

- `200`: served. `302 → login`: redirected to the (admin) login page. `403`: refused
  (JSON for the API and streams, Django's page for the admin).
- `hello`: the WebSocket is accepted and the server's `hello` arrives. `refused (403)`:
  the handshake is answered 403, no socket opens.
- `pong`, `ack`, `snapshot`: the command ran. ``error `forbidden` ``: the command was
  refused with that error code, nothing changed, the socket stays open. ``error `not_found` ``:
  the same for a notification that is not the user's, answered exactly as for an id that
  does not exist.

## Delivery channels and the audit log

- Webhooks are signed: `X-Livedash-Signature: sha256=<HMAC-SHA256 of the raw body>`
  keyed with the channel's secret (`add_channel` makes one when none is given).
  A receiver should compare it in constant time and drop a repeated
  `X-Livedash-Delivery` id. Redirects are not followed (a 3xx is a failed try).
- Webhook targets may be loopback or private addresses on purpose (receivers on
  the same host or network), and so may apprise URLs (`json://`, `ntfy://`,
  self-hosted services), whose "send a test" the server sends at once: a channel
  points the server at a host. So only staff with the admin's channel permissions,
  `manage.py add_channel`, and users granted `notifications.add_deliverychannel`
  (from the bell menu, apprise channels of their own only; no role has it by
  default) create channels. From the page a user pauses, resumes, tests and
  removes only their own channels; another user's channel answers 404, and a
  test's outcome says no more than apprise logged.
- The audit log records every control action (`set_interval`, `pause`, `resume`,
  `ack_alert`, `silence_alert`, `unsilence_alert`) and every configuration change
  (alert rules, maintenance windows, metrics, delivery channels, API tokens, dashboards) with the actor, the client
  address, before and after. Secrets (channel secrets, token hashes) appear only as
  `(secret)`. Entries cannot be added, changed or deleted in the admin; the
  collector prunes them after `AUDIT_RETENTION_DAYS`.
"""


THREAT_MODEL = """
## Threat model

### Who can reach what

| who | reaches | kept out by |
|---|---|---|
| anyone on the network | nginx only (`:8000`): the login page, `/healthz`, static files | everything else needs a session; PostgreSQL, Redis, Pushpin and the workers are not published (compose network; `make stack` binds them to loopback) |
| someone guessing passwords | `/accounts/login/`, `/admin/login/` | django-axes: 10 failures for one username from one client address within 15 minutes lock that pair for 15 minutes, on every worker (attempts are in the database, so it holds with Redis down); the page says the account is temporarily locked (429) |
| a logged-in user | their dashboard, `user-<their id>`, their notifications; more only with `view_metric` / `change_metric` / staff | the access matrix above; channel names are matched exactly (`user-<id>`: ASCII digits, no leading zero), and reading a channel writes nothing to Redis |
| another page in the user's browser | nothing: its requests carry the user's cookies, so the origin decides | the WebSocket and the SSE stream accept only the site's exact origin (`scheme://host:port` as requested, or one in `CSRF_TRUSTED_ORIGINS`), other ports and schemes of the same host included; forms need the CSRF token; `frame-ancestors 'none'` and `X-Frame-Options: DENY`, but for kiosk pages (`?kiosk=1` on `/d/` and `/s/`), which only this site may frame (`'self'`, `SAMEORIGIN`: a playlist shows them) |
| injected markup | nothing runs | an enforced `Content-Security-Policy: default-src 'self'; frame-ancestors 'none'` (no inline script or style anywhere); the page builds the DOM with `textContent`, links notifications only to `http(s)://` URLs and to paths on this site (no whitespace or control character, no `//`) |
| a client talking to a worker directly | only in `make stack` (loopback) | GRIP answers need Pushpin's signature (`GRIP_URL`'s key, required with `DEBUG` off and checked by `check --deploy`) |
| Prometheus (or any scraper) | `/metrics`: counts and totals only, no user data | an API token with the scrape scope (401 without a token, 403 for a token without the scope); in compose it comes in on nginx's private port 9100, which is not published |
| a revoked user | nothing new | logout, password change, deactivation and any permission or group change (admin, command, any process: Django's signals, then Redis) end the user's SSE streams on every worker and at the Pushpin edge and close their sockets (`4403`) within a second; every worker drops the access answers it remembered about them, so reconnects are decided afresh; an `es-meta` token issued before the change is refused |
| someone holding a lost laptop's session | what that session could do, until it is ended | `/account/sessions/` lists each signed-in session (browser, address, last seen); ending one, or all others, deletes the session (every worker then refuses it) and closes that session's streams and sockets on every worker within a second; the user's other sessions keep theirs (behind Pushpin, whose connections know no session, they reconnect at once). Every ending is audited (`session_ended`), as are `sign_in`, `sign_out`, `sign_in_failed` (an OIDC sign-in refused included), `oidc_first_sign_in` and `roles_from_provider` ([sign-in.md](sign-in.md)) |
| one user holding many connections | `MAX_CONNECTIONS_PER_USER` streams and as many sockets per worker (default 30) | a stream past it is answered 429, a socket `rate_limited` then `4008` |
| a client asking for old history | at most 3,000 events of `Last-Event-ID` replay | beyond it `stream-reset`, and the page reloads its history over HTTP (bounded by the history API) |
| a user without `view_metric` | their own presence entry only | the online list (usernames) goes to viewers only; `mark_read` of someone else's notification is answered exactly like one that does not exist |

Three paths skip parts of Django's middleware chain, each for a measured cost: stream
GETs and Pushpin's connects (they keep the security step, the Host check, the session
and the access answer) and the API's token endpoints (a token request has no session,
no cookie-based CSRF to check and no page to frame). One table, `dashboard.bypasses`,
says for every middleware in `settings.MIDDLEWARE` what stands in for it on each of
the three; a middleware added to the settings fails its test until someone decides
there what these paths do with it.

The client address (for the lockout and the logs) is the one nginx saw: nginx, the
one hop in front of the workers, overwrites `X-Forwarded-For` with `$remote_addr`,
the worker believes that header only from the peers in `FORWARDED_ALLOW_IPS`
(nginx, Pushpin), and axes reads `REMOTE_ADDR` only. A deployment that puts another
proxy in front of nginx must make that proxy the one that sets the header.

### What each secret protects

| secret | protects | if it leaks |
|---|---|---|
| `SECRET_KEY` | session cookies, CSRF tokens, password-reset links, the `es-meta` tokens Pushpin carries | anyone can forge a session for any user: rotate it (every session ends) |
| `GRIP_KEY` (the `?key=` of `GRIP_URL`, Pushpin's `sig_key`) | that a request really came through Pushpin | a client reaching a worker could pass as Pushpin and skip the HTTPS redirect and host checks: rotate it on both sides |
| `POSTGRES_PASSWORD` | every user, permission, notification and attempt log | full read and write of the product's data |
| `REDIS_PASSWORD` (compose's `requirepass`, carried in `REDIS_URL`; the sentinels of the `sentinel` profile require it too) | sessions cache, event history, presence, sampling state, the channel layer, the `/metrics` counters | reading events and forging pushes: rotate it in `.env` and restart everything; Redis is never published. A logout during a Redis outage cannot drop the session's cached copy, so copies live at most 60 s |
| `DJANGO_SUPERUSER_PASSWORD` | the first superuser; `ensure_superuser` runs Django's password validators on it | change it in the admin |
| API tokens (`create_token`) | ingest, notify and `/metrics` scopes; only their hash is stored | `revoke_token NAME` |
"""


def render():
    lines = [INTRO.rstrip("\n")]
    lines.extend(f"| {heading} | {who} |" for _, heading, who in PERSONAS)
    lines.append("\n## Matrix\n")
    lines.append("| endpoint | " + " | ".join(heading for _, heading, _ in PERSONAS) + " |")
    lines.append("|---" * (len(PERSONAS) + 1) + "|")
    for row in ROWS:
        lines.append(f"| {row.label} | " + " | ".join(row.expected[key] for key in PERSONA_KEYS) + " |")
    lines.append(LEGEND)
    lines.append(THREAT_MODEL)
    return "\n".join(lines)


def main():
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    sys.exit(main())

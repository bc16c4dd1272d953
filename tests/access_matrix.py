"""Who may do what: the access matrix, as data.

tests/test_access_matrix.py checks every cell against a real daphne worker, and
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

LOGGED_IN = ["charlie", "alice", "bob", "staff", "admin"]
VIEWERS = ["alice", "bob", "staff", "admin"]
CONTROLLERS = ["staff", "admin"]


def cells(default, **overrides):
    """A row's outcomes: `default` everywhere, `overrides` for named personas."""
    return {persona: overrides.get(persona, default) for persona in PERSONA_KEYS}


def only(personas, allowed, otherwise):
    return {persona: allowed if persona in personas else otherwise for persona in PERSONA_KEYS}


@dataclass(frozen=True)
class Row:
    label: str  # as printed in docs/security.md
    kind: str  # http, sse, ws-connect, ws-command
    target: str  # path, channel list, or command (placeholders: {alice}, {own}, {notification})
    expected: dict


# Anonymous cells of WebSocket command rows are "refused": the handshake fails, so no command runs.
_ws_anonymous = {"anonymous": REFUSED}
CONTROL = only(CONTROLLERS, ACK, ERR_FORBIDDEN) | _ws_anonymous
# Acknowledge and silence take `notifications.change_alertrule`, which only the superuser here has.
ALERTS = only(["admin"], ACK, ERR_FORBIDDEN) | _ws_anonymous

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
    Row("`GET /admin/`", "http", "/admin/", only(CONTROLLERS, OK, LOGIN)),
    Row(
        "`GET /admin/auth/user/` (user admin)",
        "http",
        "/admin/auth/user/",
        cells(LOGIN, staff=FORBIDDEN, admin=OK),
    ),
    Row(
        "`GET /admin/notifications/notification/`",
        "http",
        "/admin/notifications/notification/",
        cells(LOGIN, staff=FORBIDDEN, admin=OK),
    ),
    Row(
        "`GET /admin/notifications/delivery/` (delivery log)",
        "http",
        "/admin/notifications/delivery/",
        cells(LOGIN, staff=FORBIDDEN, admin=OK),
    ),
    Row(
        "`GET /admin/audit/auditentry/` (audit log)",
        "http",
        "/admin/audit/auditentry/",
        cells(LOGIN, staff=FORBIDDEN, admin=OK),
    ),
    Row(
        "`GET /notifications/channels/` (own delivery channels)",
        "http",
        "/notifications/channels/",
        only(LOGGED_IN, OK, FORBIDDEN),
    ),
    Row("`GET /healthz`", "http", "/healthz", cells(OK)),
    Row("WebSocket `/ws/dashboard/`", "ws-connect", "same-origin", only(LOGGED_IN, HELLO, REFUSED)),
    Row("WebSocket from another origin", "ws-connect", "http://evil.example", cells(REFUSED)),
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
        only(["alice"], ACK, ERR_FORBIDDEN) | _ws_anonymous,
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
`tests/test_access_matrix.py` checks every cell against a real daphne worker (real
session cookies, real sockets) and fails when this page and the table disagree.

Principles: anonymous users get nothing but the login page and `/healthz`; a user
never sees another user's data (their `user-<id>` stream, their notifications);
changing the collector needs `dashboard.change_metric`; acknowledging and
silencing an alert rule need `notifications.change_alertrule`; a user sees and
pauses only their own delivery channels; the WebSocket accepts
only pages served from one of `ALLOWED_HOSTS` (cross-site WebSocket hijacking).

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
  refused with that error code, nothing changed, the socket stays open.

## Delivery channels and the audit log

- Webhooks are signed: `X-Livedash-Signature: sha256=<HMAC-SHA256 of the raw body>`
  keyed with the channel's secret (`add_channel` makes one when none is given).
  A receiver should compare it in constant time and drop a repeated
  `X-Livedash-Delivery` id. Redirects are not followed (a 3xx is a failed try).
- Webhook targets may be loopback or private addresses on purpose (receivers on
  the same host or network); only staff with the admin's channel permissions, or
  `manage.py add_channel`, create channels. A user can only pause or resume their
  own channels from the page; another user's channel answers 404.
- The audit log records every control action (`set_interval`, `pause`, `resume`,
  `ack_alert`, `silence_alert`, `unsilence_alert`) and every configuration change
  (alert rules, metrics, delivery channels, API tokens) with the actor, the client
  address, before and after. Secrets (channel secrets, token hashes) appear only as
  `(secret)`. Entries cannot be added, changed or deleted in the admin; the
  collector prunes them after `AUDIT_RETENTION_DAYS`.
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
    return "\n".join(lines)


def main():
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    sys.exit(main())

"""Share links: one dashboard, read-only, for people without an account (`/s/TOKEN/`).

- `create`, `revoke`, `links_of`: the link's life, each change audited; the token is
  long and random, shown once, and only its sha256 is stored;
- `scope(board)`: the one answer to "what may a link to this dashboard read", the
  `Selection` of every series its panels' selectors reach, with each `$variable`
  widened to the values the variable itself reaches (its `label_of` among the series
  of its `match`), or its matcher dropped when the variable is not constrained;
- `resolve` / `aresolve(token)`: the live link a token names (or None), with its scope,
  remembered per worker for a moment so that a crowd of viewers costs one lookup,
  and forgotten on every worker as soon as the link ends (dashboard.revocation);
- `narrowed(link, selection)`: what a viewer's `match=` leaves of the scope, or
  `OutOfScope` when it names what the dashboard never reads.

Streams (dashboard.stream) and history ask here; neither holds a session or a database
connection for an anonymous viewer.
"""

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import re2
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.utils import timezone

from audit.services import record
from boards import spec
from boards.models import ShareLink
from dashboard import revocation, selectors, seriesindex

CREATE, FIRST_USE, REVOKE = "share.create", "share.first_use", "share.revoke"
TOKEN_BYTES = 32
PATH_PREFIX = "/s/"
# How long a worker trusts what it read about a token: a revocation is heard at once
# (the cache forgets the link), so this only bounds the work of a crowd of connects.
RESOLVE_SECONDS = 2.0
RESOLVE_KEPT = 10000
# How long a scope's variable values are kept: new series of a variable's `match`
# (a new host) reach the link's scope within this; editing the dashboard at once.
SCOPE_SECONDS = 60.0
SCOPE_KEPT = 256
# `$name` stands for this while a selector is parsed (a word valid as a metric name
# and as a label value; the trailing _ keeps variable 1 apart from variable 10).
PLACEHOLDER = "livedash_variable_{}_"


class OutOfScope(ValueError):
    """A `match=` naming series the shared dashboard never reads."""


@dataclass(frozen=True)
class Link:
    """What a worker keeps of a live link: no token, no row."""

    id: int
    dashboard_id: int
    uid: str
    expires: float | None  # unix seconds
    scope: selectors.Selection


def hash_token(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def url_of(token):
    return f"{PATH_PREFIX}{token}/"


# --- the link's life ----------------------------------------------------------------


def create(board, *, user, expires=None, note="", actor=None, address=""):
    """(link, token): a new link to `board`; the token is not kept anywhere."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with transaction.atomic():
        link = ShareLink.objects.create(
            dashboard=board, token_hash=hash_token(token), note=note, expires=expires, created_by=user
        )
        record(
            CREATE,
            f"dashboard {board.uid}",
            after={"share": link.pk, "note": note, "expires": expires.timestamp() if expires else None},
            actor=actor,
            address=address,
        )
    return link, token


def revoke(link, *, actor=None, address=""):
    """End the link now (its open streams close within a second everywhere)."""
    with transaction.atomic():
        updated = link.mark_revoked()
        if updated:
            record(
                REVOKE,
                f"dashboard {link.dashboard.uid}",
                before={"share": link.pk},
                actor=actor,
                address=address,
            )
        revocation.revoke_share(link.pk)
    remembered.forget_link(link.pk)  # here at once; other processes when they hear it
    return updated


def links_of(board):
    return board.share_links.select_related("created_by").filter(revoked_at__isnull=True)


def dashboard_changed(board):
    """The dashboard was edited or is being deleted: its links' open streams end (once
    committed) and their viewers reconnect to what the link reaches now, or to nothing."""
    for link_id in board.share_links.filter(revoked_at__isnull=True).values_list("pk", flat=True):
        revocation.revoke_share(link_id)


# --- the scope ------------------------------------------------------------------------


def _alternation(values):
    """A regex matching exactly `values` (None: any value)."""
    if values is None:
        return ".*"
    return "(?:" + "|".join(re2.escape(value) for value in values) + ")"


def _widened_matcher(matcher, placeholders, values_of):
    """`matcher` with its variables standing for every value they reach; None to drop it
    (a negative matcher, or one that no longer constrains anything), or False when it
    can match nothing (a variable that reaches no value)."""
    found = [name for placeholder, name in placeholders.items() if placeholder in matcher.value]
    if not found:
        return matcher
    if matcher.op in (selectors.NOT_EQUAL, selectors.NOT_REGEX):
        return None  # without it the selector reaches at least as much, whatever the values
    if any(values_of[name] == [] for name in found):
        return False
    pattern = matcher.value if matcher.op == selectors.REGEX else None
    parts = []
    text = matcher.value
    # Split on the placeholders: literal text (escaped for `=`), alternations for variables.
    while text:
        at = min(
            ((text.find(p), p) for p in placeholders if p in text), default=(-1, None), key=lambda x: x[0]
        )
        if at[1] is None:
            parts.append(text if pattern is not None else re2.escape(text))
            break
        index, placeholder = at
        head = text[:index]
        parts.append(head if pattern is not None else re2.escape(head))
        parts.append(_alternation(values_of[placeholders[placeholder]]))
        text = text[index + len(placeholder) :]
    regex = "".join(parts)
    if regex == ".*":
        return None
    try:
        return selectors.Matcher(matcher.label, selectors.REGEX, regex)
    except selectors.SelectorError:
        # Too many values for one regex: the variable is as good as unconstrained.
        return None


def _widened(text, names, values_of):
    """The `Selector` `text` reaches whatever values its variables take, or None when it
    reaches nothing, or would reach every series."""
    placeholders = {PLACEHOLDER.format(i): name for i, name in enumerate(names)}
    numbered = {name: PLACEHOLDER.format(i) for i, name in enumerate(names)}
    parsed = selectors.parse(spec.VARIABLE.sub(lambda m: numbered[m[1]], text))
    matchers = []
    for matcher in parsed.matchers:
        widened = _widened_matcher(matcher, placeholders, values_of)
        if widened is False:
            return None
        if widened is None and matcher.label == selectors.NAME_LABEL and matcher.op == selectors.EQUAL:
            return None  # a metric name any variable value could be: a link never reads every metric
        if widened is not None:
            matchers.append(widened)
    if all(m.matches_value("") for m in matchers):
        return None  # it would select everything: a link never reads that much
    return selectors.Selector(matchers)


def _reach(document):
    """(values each variable reaches, or None when unconstrained; the link's `Selection`)."""
    variables = document.get("variables", [])
    names = [variable["name"] for variable in variables]
    values_of = {}
    for variable in variables:
        values = None
        if "match" in variable:
            reach = _widened(variable["match"], names, values_of)
            found = (
                []
                if reach is None
                else seriesindex.label_values(variable["label_of"], selectors.Selection([reach]))
            )
            values = found
        values_of[variable["name"]] = values
    texts = {text for panel in document["panels"] for text in panel["series"]}
    reached = {_widened(text, names, values_of) for text in sorted(texts)}
    return values_of, selectors.known_selection(str(s) for s in reached if s is not None)


def compute_scope(document):
    """The `Selection` of everything a link to the dashboard `document` may read."""
    return _reach(document)[1]


def _picker_values(document, values_of, link_scope):
    """What each variable's picker offers on the share page: the values it reaches, or,
    for a variable nothing constrains, the values its label takes among the scope's
    series (never every value of the label: that would name series the link never reads)."""
    offered = {}
    for variable in document.get("variables", []):
        values = values_of.get(variable["name"])
        if values is None:
            values = (
                seriesindex.label_values(variable["label_of"], link_scope) if link_scope.selectors else []
            )
        offered[variable["name"]] = values
    return offered


_scopes = {}
_scopes_lock = threading.Lock()


def _kept(board):
    """(scope, picker values) of `board` at its current version (kept SCOPE_SECONDS per version)."""
    key = (board.pk, board.version)
    kept = _scopes.get(key)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    values_of, found = _reach(board.document)
    answer = (found, _picker_values(board.document, values_of, found))
    with _scopes_lock:
        if len(_scopes) >= SCOPE_KEPT:
            _scopes.clear()
        _scopes[key] = (time.monotonic() + SCOPE_SECONDS, answer)
    return answer


def scope(board):
    """The link scope of `board` at its current version."""
    return _kept(board)[0]


def variable_values(board):
    """{variable name: the values its picker offers on a share page of `board`}."""
    return _kept(board)[1]


def names_reached(link_scope, name):
    """True when some selector of the scope may match metric `name`."""
    return any(
        all(m.matches_value(name) for m in s.matchers if m.label == selectors.NAME_LABEL)
        for s in link_scope.selectors
    )


def narrowed(link, selection):
    """The `Selection` a viewer of `link` asking for `selection` (None: everything)
    gets: always within the scope. Raises `OutOfScope` for a selector that reaches no
    series of the dashboard (another metric, another host the panels never show)."""
    if selection is None:
        return link.scope
    for selector in selection.selectors:
        if selector.metric_name is not None and not names_reached(link.scope, selector.metric_name):
            raise OutOfScope(f"{selector.metric_name} is not on this dashboard")
        if not any(selectors.conjoin(selector, own) for own in link.scope.selectors):
            raise OutOfScope(f"{selector} reaches no series of this dashboard")
    return selectors.intersection(link.scope, selection)


# --- tokens to links ------------------------------------------------------------------


def _lookup(token):
    """The live `Link` of `token`, or None; marks its use (audited the first time)."""
    digest = hash_token(token)
    row = ShareLink.objects.select_related("dashboard").filter(token_hash=digest).first()
    # The index found the row by its hash; compared again in constant time all the same.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = timezone.now()
    if not row.is_live(now):
        return None
    if row.last_used_at is None:
        with transaction.atomic():
            if ShareLink.objects.filter(pk=row.pk, last_used_at__isnull=True).update(last_used_at=now):
                record(
                    FIRST_USE,
                    f"dashboard {row.dashboard.uid}",
                    after={"share": row.pk},
                    actor=f"share link {row.pk}",
                    address="",
                )
    else:
        ShareLink.objects.filter(pk=row.pk).update(last_used_at=now)
    expires = row.expires.timestamp() if row.expires else None
    return Link(row.pk, row.dashboard_id, row.dashboard.uid, expires, scope(row.dashboard))


class _Remembered:
    """token hash -> (until, Link or None) for RESOLVE_SECONDS; a link's revocation drops it."""

    def __init__(self):
        self.entries = {}
        self.under_way = {}

    def get(self, digest):
        entry = self.entries.get(digest)
        if entry is None or entry[0] <= time.monotonic():
            return False, None
        link = entry[1]
        if link is not None and link.expires is not None and link.expires <= time.time():
            return True, None
        return True, link

    def put(self, digest, link):
        if len(self.entries) >= RESOLVE_KEPT:
            self.entries = {}
        self.entries[digest] = (time.monotonic() + RESOLVE_SECONDS, link)

    def forget_link(self, link_id):
        self.entries = {d: e for d, e in self.entries.items() if e[1] is None or e[1].id != link_id}


remembered = _Remembered()


@revocation.on_share_revoked
def _forget(link_id):
    remembered.forget_link(link_id)


def resolve(token):
    """The live `Link` of `token`, or None (sync: history, the API)."""
    if not _plausible(token):
        return None
    digest = hash_token(token)
    known, link = remembered.get(digest)
    if known:
        return link
    link = _lookup(token)
    remembered.put(digest, link)
    return link


def _resolve_in_thread(token):
    try:
        return _lookup(token)
    finally:
        connections.close_all()


async def aresolve(token):
    """`resolve` on the event loop: a remembered answer, else one lookup in a thread for
    every connect that asks at once (its database connection closed there)."""
    if not _plausible(token):
        return None
    digest = hash_token(token)
    known, link = remembered.get(digest)
    if known:
        return link
    lookup = remembered.under_way.get(digest)
    if lookup is None:
        lookup = asyncio.ensure_future(sync_to_async(_resolve_in_thread, thread_sensitive=False)(token))
        remembered.under_way[digest] = lookup

        def done(finished):
            remembered.under_way.pop(digest, None)
            if not finished.cancelled() and finished.exception() is None:
                remembered.put(digest, finished.result())

        lookup.add_done_callback(done)
    return await asyncio.shield(lookup)


def _plausible(token):
    return isinstance(token, str) and 20 <= len(token) <= 100


# Why tokens name no live link, per worker: each answer is final (a link never comes
# back, and a token is never guessed into existence), so the crowd of viewers whose
# pages ask at once when their link ends costs one query.
_refusals = {}


def why_refused(token):
    """Why `token` names no live link: "revoked", "expired" or "unknown" (the share page
    tells its viewer which; the stream and history answer 403 for each alike)."""
    if not _plausible(token):
        return "unknown"
    digest = hash_token(token)
    known = _refusals.get(digest)
    if known is not None:
        return known
    row = ShareLink.objects.filter(token_hash=digest).only("token_hash", "revoked_at", "expires").first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        why = "unknown"
    elif row.revoked_at is not None:
        why = "revoked"
    elif row.expires is not None and row.expires <= timezone.now():
        why = "expired"
    else:
        return "unknown"  # live after all (made live between two reads): not remembered
    if len(_refusals) >= RESOLVE_KEPT:
        _refusals.clear()
    _refusals[digest] = why
    return why

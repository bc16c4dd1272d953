"""Playlists: dashboards shown in turn on a screen, and their anonymous shares.

- `validate(document)`: the playlist JSON (docs/dashboards.md, "Playlists"), every
  refusal an `InvalidDashboard` naming the place (`entries[2].dashboard: ...`);
- `save` / `delete`: the one place a playlist changes, with its version checked like a
  dashboard's and an audit entry;
- `shown_to(playlist, user)`: the entries a signed-in viewer gets, those they may see;
- `share` / `revoke` / `resolve`: a playlist for people without an account.

Sharing widens nothing. A playlist share is a token and one ordinary share link per
dashboard of the playlist, made when the share is made and only by someone who may
share every one of those dashboards (boards.sharing's rule). Each link's token is
derived from the playlist's (HMAC of the dashboard uid keyed with it), so the server
keeps hashes only and still hands the viewer, who holds the playlist token, the links'
tokens. What the viewer then reads is exactly what those links reach, through the
share pages, streams and history, with their viewer cap, expiry and revocation.
A dashboard added to the playlist later is not shown to the share's viewers until
the playlist is shared again.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import record
from boards import sharing, spec
from boards.models import Dashboard, Playlist, PlaylistShare, ShareLink, Visibility

CREATE, CHANGE, DELETE = "playlist.create", "playlist.change", "playlist.delete"
SHARE, UNSHARE = "playlist.share", "playlist.revoke_share"
# A screen shows a dashboard for at least a few seconds (its history has to load) and
# at most a day; more entries than this is no longer a rotation anyone watches.
MIN_INTERVAL = 5
MAX_INTERVAL = 86400
MAX_ENTRIES = 100
KEYS = ("uid", "title", "interval", "visibility", "entries", "version", "owner")
ENTRY_KEYS = ("dashboard",)


class Conflict(Exception):
    """The caller's version is not the stored one (or the playlist is not there any more)."""


class NotFound(Exception):
    pass


def validate(document):
    """The document with its keys in the documented order; `owner` is read-only and ignored."""
    spec._object(document, "", ("uid", "title", "interval", "entries"), ("visibility", "version", "owner"))
    spec.validate_uid(document["uid"])
    spec._text(document["title"], "title", spec.TITLE_MAX_LENGTH)
    spec._integer(document["interval"], "interval", MIN_INTERVAL, MAX_INTERVAL)
    if "visibility" in document:
        spec._visibility(document["visibility"], "visibility")
    if "version" in document:
        spec._integer(document["version"], "version", 1, spec.MAX_VERSION)
    entries = spec._list(document["entries"], "entries", MAX_ENTRIES)
    for index, entry in enumerate(entries):
        where = f"entries[{index}]"
        spec._object(entry, where, ENTRY_KEYS, ())
        spec.validate_uid(entry["dashboard"], f"{where}.dashboard")
    return {key: document[key] for key in KEYS if key in document and key != "owner"}


def export(playlist):
    visibility = (
        {"groups": playlist.groups} if playlist.visibility == Visibility.GROUPS else playlist.visibility
    )
    return {
        "uid": playlist.uid,
        "title": playlist.title,
        "interval": playlist.interval,
        "visibility": visibility,
        "entries": playlist.entries,
        "version": playlist.version,
        "owner": playlist.owner.get_username() if playlist.owner else None,
    }


@dataclass(frozen=True)
class Author:
    name: str = ""
    owner: object = None
    address: str = ""


def save(document, *, author, expected_version=None, allowed=None, can_see=None):
    """Create or replace the playlist `document` names (validated here). `allowed(row or
    None)` raises when the caller may not; `can_see(dashboard)` says whether the caller
    may see a dashboard it lists (an entry it may not see is refused as unknown)."""
    document = validate(document)
    uids = [entry["dashboard"] for entry in document["entries"]]
    found = {board.uid: board for board in Dashboard.objects.filter(uid__in=uids).select_related("owner")}
    for index, uid in enumerate(uids):
        board = found.get(uid)
        if board is None or (can_see is not None and not can_see(board)):
            raise spec.InvalidDashboard(
                f"entries[{index}].dashboard", f"no dashboard {uid!r} (or you may not see it)"
            )
    visibility = document.get("visibility", Visibility.PRIVATE)
    with transaction.atomic():
        row = Playlist.objects.select_for_update().filter(uid=document["uid"]).first()
        if allowed is not None:
            allowed(row)
        if row is None:
            if expected_version is not None:
                raise Conflict(f"playlist {document['uid']!r} does not exist (any more)")
            row = Playlist(uid=document["uid"], owner=author.owner, version=1)
            action, before = CREATE, None
        else:
            if expected_version != row.version:
                raise Conflict(
                    f"playlist {row.uid!r} is at version {row.version}, not {expected_version}: "
                    "reload it and apply your change again"
                )
            before = export(row)
            row.version += 1
            action = CHANGE
        row.title = document["title"]
        row.interval = document["interval"]
        row.entries = document["entries"]
        if isinstance(visibility, dict):
            row.visibility, row.groups = Visibility.GROUPS, list(visibility["groups"])
        else:
            row.visibility, row.groups = visibility, []
        row.updated_by = author.name
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            raise Conflict(f"playlist {row.uid!r} was created meanwhile: reload it") from None
        record(
            action,
            f"playlist {row.uid}",
            before=before,
            after=export(row),
            actor=author.name,
            address=author.address,
        )
    return row


def delete(playlist, *, author, expected_version=None):
    with transaction.atomic():
        row = Playlist.objects.select_for_update().filter(pk=playlist.pk).first()
        if row is None:
            raise NotFound(f"no playlist {playlist.uid!r}")
        if expected_version is not None and expected_version != row.version:
            raise Conflict(f"playlist {row.uid!r} is at version {row.version}, not {expected_version}")
        # Its shares' links are ordinary links: they would outlive the row.
        links = list(
            ShareLink.objects.select_related("dashboard").filter(
                playlist_shares__playlist=row, revoked_at__isnull=True
            )
        )
        before = export(row)
        row.delete()
        record(DELETE, f"playlist {row.uid}", before=before, actor=author.name, address=author.address)
    for link in links:
        sharing.revoke(link, actor=author.name, address=author.address)


def shown_to(playlist, user):
    """The dashboards of `playlist` that `user` may see, in its order (a uid listed twice
    is shown twice)."""
    found = {
        board.uid: board
        for board in Dashboard.objects.filter(uid__in=playlist.uids()).select_related("owner")
    }
    return [found[uid] for uid in playlist.uids() if uid in found and found[uid].can_view(user)]


# --- anonymous shares -------------------------------------------------------------------


def entry_token(playlist_token, dashboard_uid):
    """The share-link token of one dashboard of a shared playlist: only who holds the
    playlist's token can compute it, and it is as long and random as any link's."""
    digest = hmac.new(playlist_token.encode(), f"playlist-entry:{dashboard_uid}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def share(playlist, *, user, may_share, expires=None, note="", actor="", address=""):
    """(share, token): a share of `playlist` with one link per dashboard it lists.
    `may_share(board)` is the caller's right to share one dashboard; a dashboard it may
    not share refuses the whole share (PermissionError naming it), nothing made."""
    uids = list(dict.fromkeys(playlist.uids()))
    boards = {board.uid: board for board in Dashboard.objects.filter(uid__in=uids)}
    for uid in uids:
        board = boards.get(uid)
        if board is None or not may_share(board):
            raise PermissionError(f"you may not share dashboard {uid!r} of this playlist")
    token = secrets.token_urlsafe(sharing.TOKEN_BYTES)
    with transaction.atomic():
        shared = PlaylistShare.objects.create(
            playlist=playlist,
            token_hash=sharing.hash_token(token),
            note=note,
            expires=expires,
            created_by=user,
        )
        for uid in uids:
            link = ShareLink.objects.create(
                dashboard=boards[uid],
                token_hash=sharing.hash_token(entry_token(token, uid)),
                note=f"playlist {playlist.uid}" + (f": {note}" if note else ""),
                expires=expires,
                created_by=user,
            )
            shared.links.add(link)
            record(
                sharing.CREATE,
                f"dashboard {uid}",
                after={
                    "share": link.pk,
                    "playlist": playlist.uid,
                    "expires": expires.timestamp() if expires else None,
                },
                actor=actor,
                address=address,
            )
        record(
            SHARE,
            f"playlist {playlist.uid}",
            after={"share": shared.pk, "note": note, "expires": expires.timestamp() if expires else None},
            actor=actor,
            address=address,
        )
    return shared, token


def _revoke_links(shared, author):
    for link in shared.links.select_related("dashboard").filter(revoked_at__isnull=True):
        sharing.revoke(link, actor=author.name, address=author.address)


def revoke(shared, *, author):
    """End the share and every link it made (their open streams close within a second)."""
    with transaction.atomic():
        updated = shared.mark_revoked()
        if updated:
            record(
                UNSHARE,
                f"playlist {shared.playlist.uid}",
                before={"share": shared.pk},
                actor=author.name,
                address=author.address,
            )
    _revoke_links(shared, author)
    return updated


def resolve(uid, token):
    """(playlist, [(dashboard, link token), ...]) for a live share of playlist `uid`, or
    None. Only the entries whose own link is still live are listed: a link revoked on
    its dashboard's page, or its dashboard deleted, drops out of the rotation."""
    if not sharing._plausible(token):
        return None
    digest = sharing.hash_token(token)
    shared = PlaylistShare.objects.select_related("playlist").filter(token_hash=digest).first()
    if shared is None or not hmac.compare_digest(shared.token_hash, digest) or shared.playlist.uid != uid:
        return None
    if not shared.is_live(timezone.now()):
        return None
    now = timezone.now()
    live = {
        link.token_hash: link
        for link in shared.links.select_related("dashboard").filter(revoked_at__isnull=True)
        if link.is_live(now)
    }
    shown = []
    for uid_ in shared.playlist.uids():
        link_token = entry_token(token, uid_)
        link = live.get(sharing.hash_token(link_token))
        if link is not None:
            shown.append((link.dashboard, link_token))
    return shared.playlist, shown

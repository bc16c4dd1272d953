"""The playlists API: `GET /api/v1/playlists`, `GET/PUT/DELETE /api/v1/playlists/UID`,
and a playlist's anonymous shares (`.../UID/shares[/ID]`).

The dashboards API's callers and conventions (api/dashboards.py): a token with the
`dashboards` scope, or the logged-in user by the playlist's visibility; `PUT` creates
or replaces with the stored `version` (409 `conflict` otherwise); errors as JSON.
A user lists only the dashboards they may see in a playlist they make or change.
"""

from django.http import HttpResponse, JsonResponse
from ninja import Router

from api import bodies
from api.auth import ApiError, forbidden
from api.dashboards import _share_body, _valid_uid, _version_param, answered
from boards import playlists, spec
from boards.models import Playlist

router = Router(tags=["playlists"])


def not_found(uid):
    return ApiError(404, "not_found", f"no playlist {uid!r} (or you may not see it)")


def _author(caller):
    author = caller.author()
    return playlists.Author(name=author.name, owner=author.owner, address=author.address)


def _visible(caller, uid):
    row = Playlist.objects.select_related("owner").filter(uid=uid).first()
    if row is None or not caller.can_view(row):
        raise not_found(uid)
    return row


def _summary(caller, row):
    return {
        **playlists.export(row),
        "editable": caller.can_edit(row),
        "updated_at": row.updated_at.timestamp(),
    }


@router.get("", summary="The playlists the caller may see")
@answered
def list_playlists(caller, request):
    rows = Playlist.objects.select_related("owner")
    return JsonResponse({"playlists": [_summary(caller, row) for row in rows if caller.can_view(row)]})


@router.get("/{uid}", summary="A playlist's JSON")
@answered
def get_playlist(caller, request, uid: str):
    return JsonResponse(playlists.export(_visible(caller, uid)))


@router.put("/{uid}", summary="Create or replace a playlist")
@answered
def put_playlist(caller, request, uid: str):
    """Body `{"uid"?, "title", "interval": seconds (5-86400), "visibility"?, "entries":
    [{"dashboard": uid}, ...], "version"?}`: `version` must be the stored one (absent
    when creating), else 409 `conflict`. Answers the stored JSON with its new version."""
    uid = _valid_uid(uid)
    bodies.require_media_type(request, {"application/json"}, "application/json")
    document = bodies.parse_json(bodies.read_body(request))
    if not isinstance(document, dict):
        raise bodies.invalid(f"a playlist must be a JSON object, got {spec.kind(document)}")
    if document.setdefault("uid", uid) != uid:
        raise bodies.invalid(f"uid: the body's uid {document['uid']!r} is not the path's {uid!r}")

    def allowed(row):
        if row is None:
            if not caller.may_create():
                raise forbidden("you may not create playlists (it takes dashboard.view_metric)")
        elif not caller.can_edit(row):
            raise forbidden(f"you may not change playlist {uid!r}")

    try:
        row = playlists.save(
            document,
            author=_author(caller),
            expected_version=document.get("version"),
            allowed=allowed,
            can_see=caller.can_view,
        )
    except spec.InvalidDashboard as exc:
        raise bodies.invalid(str(exc)) from None
    except playlists.Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return JsonResponse(playlists.export(row))


@router.delete("/{uid}", summary="Delete a playlist")
@answered
def delete_playlist(caller, request, uid: str, version: str = ""):
    """`?version=N`, when given, must be the stored version (else 409 `conflict`). Answers
    204; the playlist's shares end with it."""
    row = _visible(caller, uid)
    if not caller.can_edit(row):
        raise forbidden(f"you may not delete playlist {uid!r}")
    try:
        playlists.delete(row, author=_author(caller), expected_version=_version_param(version))
    except playlists.NotFound:
        raise not_found(uid) from None
    except playlists.Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return HttpResponse(status=204)


# --- anonymous shares: whoever may edit the playlist and share each of its dashboards ---


def _editable(caller, uid):
    row = _visible(caller, uid)
    if not caller.can_edit(row):
        raise forbidden(f"you may not share playlist {uid!r}: it takes being able to edit it")
    return row


def _share_summary(shared):
    return {
        "id": shared.pk,
        "note": shared.note,
        "expires": shared.expires.timestamp() if shared.expires else None,
        "created_by": shared.created_by.get_username() if shared.created_by else None,
        "created_at": shared.created_at.timestamp(),
        # Made in the playlist's order.
        "dashboards": [
            link.dashboard.uid
            for link in sorted(shared.links.all(), key=lambda link: link.pk)
            if link.revoked_at is None
        ],
    }


@router.post("/{uid}/shares", summary="Share a playlist with people without an account")
@answered
def create_share(caller, request, uid: str):
    """Body `{"expires"?: unix seconds, "note"?}`; answers 201 `{"id", "url":
    "/playlists/UID/?share=TOKEN", "expires", "dashboards"}`. It makes one share link
    per dashboard, so it takes the right to share each (403 naming the first that is
    not yours to share); the token is in the answer only."""
    row = _editable(caller, uid)
    note, expires = _share_body(request)
    if not row.entries:
        raise bodies.invalid("entries: an empty playlist has nothing to share")
    user = caller.user if caller.user is not None else caller.token.created_by
    try:
        shared, token = playlists.share(
            row,
            user=user,
            may_share=caller.can_edit,
            expires=expires,
            note=note,
            actor=caller.author().name,
            address=caller.address,
        )
    except PermissionError as exc:
        raise forbidden(str(exc)) from None
    body = {
        "id": shared.pk,
        "url": f"/playlists/{row.uid}/?share={token}",
        "expires": expires.timestamp() if expires else None,
        "dashboards": list(dict.fromkeys(row.uids())),
    }
    return JsonResponse(body, status=201)


@router.get("/{uid}/shares", summary="A playlist's live shares")
@answered
def list_shares(caller, request, uid: str):
    row = _editable(caller, uid)
    shares = (
        row.shares.filter(revoked_at__isnull=True)
        .select_related("created_by")
        .prefetch_related("links__dashboard")
    )
    return JsonResponse({"shares": [_share_summary(shared) for shared in shares]})


@router.delete("/{uid}/shares/{share_id}", summary="Revoke a playlist share")
@answered
def delete_share(caller, request, uid: str, share_id: str):
    """Answers 204; the share's links end with it and their open streams within a second."""
    row = _editable(caller, uid)
    shared = None
    if share_id.isascii() and share_id.isdigit() and len(share_id) <= 18:
        shared = row.shares.filter(pk=int(share_id), revoked_at__isnull=True).first()
    if shared is None:
        raise ApiError(404, "not_found", f"playlist {uid!r} has no share {share_id}")
    playlists.revoke(shared, author=_author(caller))
    return HttpResponse(status=204)

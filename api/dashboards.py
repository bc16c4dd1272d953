"""The dashboards API: list, read, create or replace, delete, and the versions behind them.

Unlike the push endpoints, these serve two kinds of caller: an API token with the
`dashboards` scope (dashboards as code: it may read and change every dashboard), and
the logged-in user of the page, by the dashboard's visibility (boards.models). A
session's unsafe methods need Django's CSRF token (`X-CSRFToken`), as any form would.
The rules on the data itself (validation, versions, provisioned dashboards) are
boards.store's, the same for the commands and provisioning.
"""

import functools
import inspect
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.http import HttpResponse, JsonResponse
from ninja import Router
from ninja.utils import check_csrf

from api import bodies, ratelimit
from api.auth import ApiError, aauthenticate, client_address, error_response, forbidden, unauthenticated
from boards import spec, store
from boards.models import Dashboard, HomeDashboard

router = Router(tags=["dashboards"])
# The user's home dashboard (what `/` shows): a session's own preference.
home_router = Router(tags=["dashboards"])

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def not_found(uid):
    return ApiError(404, "not_found", f"no dashboard {uid!r} (or you may not see it)")


def conflict(exc):
    return ApiError(409, "conflict", str(exc))


def provisioned(exc):
    return ApiError(409, "provisioned", str(exc))


@dataclass(frozen=True)
class Caller:
    """A token (every dashboard) or a user (by visibility)."""

    token: object = None
    user: object = None
    address: str = ""

    def can_view(self, board):
        return self.token is not None or board.can_view(self.user)

    def can_edit(self, board):
        return self.token is not None or board.can_edit(self.user)

    def may_create(self):
        # Anyone who may see metrics may build dashboards of their own.
        return self.token is not None or self.user.has_perm("dashboard.view_metric")

    def author(self):
        if self.token is not None:
            creator = self.token.created_by
            name = creator.get_username() if creator else f"token {self.token.name}"
            return store.Author(name=name, owner=creator, address=self.address)
        return store.Author(name=self.user.get_username(), owner=self.user, address=self.address)


async def identify(request):
    """The caller: a token in `Authorization`, else the session's user (CSRF checked for
    unsafe methods); raises ApiError 401/403."""
    address = client_address(request) or ""
    if request.headers.get("Authorization"):
        token = await aauthenticate(request, "dashboards")
        await ratelimit.take(token, "requests")
        await sync_to_async(lambda: token.created_by)()  # loaded here, read in the sync part
        return Caller(token=token, address=address)
    user = await request.auser()
    if not user.is_authenticated:
        raise unauthenticated("log in, or send an API token with the dashboards scope")
    if request.method not in SAFE_METHODS and check_csrf(request) is not None:
        raise forbidden("CSRF check failed: send the csrftoken cookie's value in X-CSRFToken")
    return Caller(user=user, address=address)


def answered(handler):
    """Run `handler(caller, request, ...)` in a thread for the identified caller; every
    ApiError becomes the contract's JSON error."""

    @functools.wraps(handler)
    async def view(request, *args, **kwargs):
        try:
            caller = await identify(request)
            return await sync_to_async(handler)(caller, request, *args, **kwargs)
        except ApiError as error:
            return error_response(error)

    # ninja reads the parameters (query, path) from the signature: the handler's, less `caller`.
    signature = inspect.signature(handler)
    view.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return view


def _visible(caller, uid):
    board = Dashboard.objects.select_related("owner").filter(uid=uid).first()
    if board is None or not caller.can_view(board):
        raise not_found(uid)
    return board


def _summary(caller, board):
    return {
        "uid": board.uid,
        "title": board.title,
        "tags": board.tags,
        "version": board.version,
        "visibility": board.visibility,
        "owner": board.owner.get_username() if board.owner else None,
        "provisioned": board.provisioned,
        "editable": caller.can_edit(board) and not board.provisioned,
        "updated_at": board.updated_at.timestamp(),
        "updated_by": board.updated_by,
    }


def _version_param(text):
    if text is None or text == "":
        return None
    # ASCII digits only (`isdigit` alone takes "²"), and within the column's range.
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > spec.MAX_VERSION:
        raise bodies.invalid(f"version must be a positive integer, got {text[:20]!r}")
    return int(text)


@router.get("", summary="The dashboards the caller may see")
@answered
def list_dashboards(caller, request, q: str = "", tag: str = ""):
    """`q` keeps those whose title or uid contains it (any case); `tag` those with that tag."""
    boards = Dashboard.objects.select_related("owner") if caller.token else Dashboard.visible_to(caller.user)
    found = [_summary(caller, board) for board in Dashboard.search(boards, q, tag)]
    return JsonResponse({"dashboards": found})


@router.get("/{uid}", summary="A dashboard's JSON")
@answered
def get_dashboard(caller, request, uid: str):
    return JsonResponse(_visible(caller, uid).export())


def _checked_document(request, uid):
    bodies.require_media_type(request, {"application/json"}, "application/json")
    document = bodies.parse_json(bodies.read_body(request))
    if not isinstance(document, dict):
        raise bodies.invalid(f"a dashboard must be a JSON object, got {spec.kind(document)}")
    if document.setdefault("uid", uid) != uid:
        raise bodies.invalid(f"uid: the body's uid {document['uid']!r} is not the path's {uid!r}")
    version = document.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise bodies.invalid(f"version: must be an integer, got {spec.kind(version)}")
    return document


@router.put("/{uid}", summary="Create or replace a dashboard")
@answered
def put_dashboard(caller, request, uid: str, message: str = ""):
    """The body is the dashboard's JSON. Its `version` must be the stored one (absent when
    creating), else 409 `conflict` and nothing changes. Answers the stored JSON with its
    new version. `?message=` is kept with the version."""
    spec_uid = _valid_uid(uid)
    document = _checked_document(request, spec_uid)

    def allowed(board):
        if board is None:
            if not caller.may_create():
                raise forbidden("you may not create dashboards (it takes dashboard.view_metric)")
        elif not caller.can_edit(board):
            raise forbidden(f"you may not change dashboard {uid!r}")

    try:
        board = store.save(
            document,
            author=caller.author(),
            expected_version=document.get("version"),
            message=message,
            allowed=allowed,
        )
    except spec.InvalidDashboard as exc:
        raise bodies.invalid(str(exc)) from None
    except store.Provisioned as exc:
        raise provisioned(exc) from None
    except store.Conflict as exc:
        raise conflict(exc) from None
    return JsonResponse(board.export())


def _valid_uid(uid):
    try:
        return spec.validate_uid(uid)
    except spec.InvalidDashboard as exc:
        raise bodies.invalid(str(exc)) from None


@router.delete("/{uid}", summary="Delete a dashboard")
@answered
def delete_dashboard(caller, request, uid: str, version: str = ""):
    """`?version=N`, when given, must be the stored version (else 409 `conflict`). Answers 204."""
    board = _visible(caller, uid)
    if not caller.can_edit(board):
        raise forbidden(f"you may not delete dashboard {uid!r}")
    try:
        store.delete(uid, author=caller.author(), expected_version=_version_param(version))
    except store.NotFound:
        raise not_found(uid) from None
    except store.Provisioned as exc:
        raise provisioned(exc) from None
    except store.Conflict as exc:
        raise conflict(exc) from None
    return HttpResponse(status=204)


@router.get("/{uid}/versions", summary="A dashboard's saved versions, newest first")
@answered
def list_versions(caller, request, uid: str):
    board = _visible(caller, uid)
    return JsonResponse({"versions": [old.summary() for old in board.versions.all()]})


@router.get("/{uid}/versions/{version}", summary="The JSON a dashboard had at one version")
@answered
def get_version(caller, request, uid: str, version: str):
    old = _visible(caller, uid).versions.filter(version=_version_param(version) or 0).first()
    if old is None:
        raise ApiError(404, "not_found", f"dashboard {uid!r} has no version {version}")
    return JsonResponse(old.document)


@router.post("/{uid}/versions/{version}/restore", summary="Save an old version as the newest")
@answered
def restore_version(caller, request, uid: str, version: str, current: str = ""):
    """`?current=N`, when given, must be the stored version (else 409 `conflict`).
    Answers the stored JSON with its new version."""
    board = _visible(caller, uid)
    if not caller.can_edit(board):
        raise forbidden(f"you may not change dashboard {uid!r}")
    number = _version_param(version)
    try:
        board = store.restore(
            uid, number or 0, author=caller.author(), expected_version=_version_param(current)
        )
    except store.NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except store.Provisioned as exc:
        raise provisioned(exc) from None
    except store.Conflict as exc:
        raise conflict(exc) from None
    return JsonResponse(board.export())


def _own_session(caller):
    if caller.user is None:
        raise forbidden("the home dashboard is a user's preference: log in to read or set it")
    return caller.user


@home_router.get("", summary="The caller's home dashboard")
@answered
def get_home(caller, request):
    """`{"uid"}`: the dashboard `/` shows (the user's choice, by default host-overview)."""
    board = HomeDashboard.dashboard_for(_own_session(caller))
    return JsonResponse({"uid": board.uid if board else None})


@home_router.put("", summary="Choose the caller's home dashboard")
@answered
def put_home(caller, request):
    """Body `{"uid"}`: a dashboard the user may see."""
    user = _own_session(caller)
    bodies.require_media_type(request, {"application/json"}, "application/json")
    payload = bodies.parse_json(bodies.read_body(request))
    uid = payload.get("uid") if isinstance(payload, dict) else None
    if not isinstance(uid, str):
        raise bodies.invalid('send {"uid": "<a dashboard uid>"}')
    _visible(caller, uid)
    HomeDashboard.objects.update_or_create(user=user, defaults={"uid": uid})
    return JsonResponse({"uid": uid})

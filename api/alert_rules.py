"""Alert rules as code over HTTP: `GET /api/v1/alert-rules`, `GET/PUT/DELETE
/api/v1/alert-rules/NAME`, in the JSON of alerts/code.py.

Allowed to a token with the `alerts` scope, or to a staff user's session (then
CSRF applies to PUT and DELETE, as to any form a browser posts).
"""

from asgiref.sync import sync_to_async
from ninja import Router, Status

from alerts import code
from api import bodies
from api.auth import ApiError
from api.schemes import TokenOrStaffSession

SCOPE = "alerts"


router = Router(auth=TokenOrStaffSession(SCOPE, "alert rules"), tags=["alert rules"])


def _conflict(exc):
    return ApiError(409, exc.code, str(exc))


@router.get("", summary="Every alert rule that has a name")
async def list_rules(request):
    return {"rules": await sync_to_async(code.listing)()}


@router.get("/{name}", summary="One alert rule")
async def get_rule(request, name: str):
    def read():
        try:
            rule = code.find(name)
        except code.Conflict as exc:
            raise _conflict(exc) from None
        if rule is None:
            raise ApiError(404, "not_found", f"there is no alert rule named {name!r}")
        return code.as_json(rule)

    return await sync_to_async(read)()


@router.put("/{name}", summary="Create or replace an alert rule")
async def put_rule(request, name: str):
    bodies.require_media_type(request, {"application/json"}, "application/json")
    data = bodies.parse_json(bodies.read_body(request))

    def write():
        try:
            rule, _created = code.put(name, data)
        except code.Conflict as exc:
            raise _conflict(exc) from None
        except ValueError as exc:
            raise bodies.invalid(str(exc)) from None
        return code.as_json(rule)

    return Status(200, await sync_to_async(write)())


@router.delete("/{name}", response={204: None}, summary="Delete an alert rule")
async def delete_rule(request, name: str):
    def remove():
        try:
            return code.delete(name)
        except code.Conflict as exc:
            raise _conflict(exc) from None

    if not await sync_to_async(remove)():
        raise ApiError(404, "not_found", f"there is no alert rule named {name!r}")
    return Status(204, None)

"""Maintenance windows over HTTP: `GET /api/v1/maintenance-windows`, `POST` one
(201 with the stored window), `GET` and `DELETE /api/v1/maintenance-windows/ID`, in
the JSON of alerts/windows.py.

Allowed to a token with the `alerts` scope, or to a staff user's session, as alert
rules are (api/alert_rules.py): a window decides who hears of an alert.
"""

from asgiref.sync import sync_to_async
from ninja import Router, Status

from alerts import windows
from alerts.models import MaintenanceWindow
from api import bodies
from api.auth import ApiError
from api.schemes import TokenOrStaffSession

router = Router(auth=TokenOrStaffSession("alerts", "maintenance windows"), tags=["maintenance windows"])


def _find(window_id):
    window = MaintenanceWindow.objects.filter(pk=int(window_id)).first() if window_id.isdigit() else None
    if window is None:
        raise ApiError(404, "not_found", f"there is no maintenance window {window_id!r}")
    return window


@router.get("", summary="Every maintenance window, and the occurrence of each that is on now")
async def list_windows(request):
    def read():
        return [windows.as_json(window) for window in MaintenanceWindow.objects.order_by("id")]

    return {"windows": await sync_to_async(read)()}


@router.post("", response={201: dict}, summary="Add a maintenance window")
async def add_window(request):
    bodies.require_media_type(request, {"application/json"}, "application/json")
    data = bodies.parse_json(bodies.read_body(request))

    def write():
        try:
            window = windows.from_json(data)
        except ValueError as exc:
            raise bodies.invalid(str(exc)) from None
        window.save()
        return windows.as_json(window)

    return Status(201, await sync_to_async(write)())


@router.get("/{window_id}", summary="One maintenance window")
async def get_window(request, window_id: str):
    def read():
        return windows.as_json(_find(window_id))

    return await sync_to_async(read)()


@router.delete("/{window_id}", response={204: None}, summary="Delete a maintenance window")
async def delete_window(request, window_id: str):
    def remove():
        _find(window_id).delete()

    await sync_to_async(remove)()
    return Status(204, None)

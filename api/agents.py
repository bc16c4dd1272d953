"""Host agents enrolling themselves: `POST /api/v1/agents/enroll`.

An operator hands every host the same enrollment token (`create_token NAME --enroll`)
instead of a token that may push anything; each agent trades it once for a token of
its own that may push only series labelled with its own `host`. A host already holding
an active token is refused until that token is revoked (the hosts page or
`revoke_token`), so an enrollment token cannot be used to take over a running host.
"""

from asgiref.sync import sync_to_async
from ninja import Router, Status
from pydantic import BaseModel, ValidationError

from api import bodies, schemas
from api.auth import ApiError, client_address
from api.models import ApiToken, HostAlreadyEnrolled
from api.schemes import TokenAuth
from audit.services import record
from dashboard import series

router = Router(tags=["agents"])


class EnrollIn(schemas.Strict):
    host: str


class Enrolled(BaseModel):
    token: str
    name: str
    host: str


ENROLL_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": EnrollIn.model_json_schema(), "example": {"host": "web1"}}
        },
    }
}


@router.post(
    "enroll",
    auth=TokenAuth("enroll"),
    response={201: Enrolled},
    summary="Enroll a host agent",
    openapi_extra=ENROLL_BODY,
)
async def enroll(request):
    """Trade an enrollment token for a token of the host's own: `{"host": NAME}` answers
    201 `{"token", "name", "host"}`; the token pushes any metric, only labelled
    `host=NAME`. 409 `conflict` while the host holds an active token."""
    bodies.require_media_type(request, {"application/json"}, "application/json")
    try:
        host = EnrollIn.model_validate(bodies.parse_json(bodies.read_body(request))).host
    except ValidationError as exc:
        raise bodies.invalid(schemas.describe_errors(exc.errors())) from None
    try:
        if not host.strip():
            raise ValueError("host must not be empty")
        series.validate_label_value("host", host)
    except ValueError as exc:
        raise bodies.invalid(str(exc)) from None
    token, raw = await sync_to_async(_enroll)(request.auth, host, client_address(request))
    return Status(201, {"token": raw, "name": token.name, "host": host})


def _enroll(enrollment_token, host, address):
    try:
        token, raw = ApiToken.enroll_host(host)
    except HostAlreadyEnrolled as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    record(
        "agent.enroll",
        target=host,
        after={"token": token.name},
        actor=f"token:{enrollment_token.name}",
        address=address,
    )
    return token, raw

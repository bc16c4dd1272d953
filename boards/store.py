"""Saving dashboards: the one place a dashboard is created, changed, restored, imported
or deleted, whoever asks (the API, the commands, provisioning). Each save is a new
version row, an audit entry, and, once committed, a `dashboard-changed` event on
the `metrics` channel so open pages can say "updated by X".

Who may do it is the caller's question (the API checks visibility and scopes);
what is refused here holds for everyone: a stale version (`Conflict`) and a change
to a provisioned dashboard other than by its file (`Provisioned`).
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from audit.services import record
from boards import sharing, spec
from boards.models import MESSAGE_MAX_LENGTH, Dashboard, DashboardVersion
from dashboard import frames, live
from dashboard.stream.channels import METRICS_CHANNEL, user_channel

logger = logging.getLogger(__name__)

CREATE, CHANGE, DELETE, RESTORE, IMPORT, PROVISION = (
    "dashboard.create",
    "dashboard.change",
    "dashboard.delete",
    "dashboard.restore",
    "dashboard.import",
    "dashboard.provision",
)


class Conflict(Exception):
    """The caller's version is not the stored one (or the dashboard is not there any more)."""


class Provisioned(Exception):
    """The dashboard follows a file in DASHBOARDS_DIR: change the file, or save a copy."""


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Author:
    """Who saves: a name for versions, audit and the live event, and the user a new
    dashboard belongs to (None: no one)."""

    name: str = ""
    owner: object = None
    address: str = ""


def _push(board, version, by):
    """Once committed, tell open pages: on `metrics` when everyone may see the dashboard,
    else on the own channel of each user who may. A push that fails (Redis away) is
    logged, not raised: the save stands, and pages see it when they load it again."""
    audience = board.private_audience()
    channels = [METRICS_CHANNEL] if audience is None else [user_channel(pk) for pk in audience]
    data = frames.dashboard_changed(board.uid, version, by)

    def push():
        try:
            for channel in channels:
                live.send(channel, frames.DASHBOARD_CHANGED, data)
        except Exception:
            logger.warning("could not tell open pages that dashboard %s changed", board.uid, exc_info=True)

    transaction.on_commit(push)


def _locked(uid):
    return Dashboard.objects.select_for_update().filter(uid=uid).first()


def _check_version(board, expected):
    if board is None:
        if expected is not None:
            raise Conflict(
                f"there is no version {expected} to replace: send no version to create the dashboard"
            )
        return
    if expected is None:
        raise Conflict(
            f"dashboard already exists at version {board.version}; send that version to replace it"
        )
    if expected != board.version:
        raise Conflict(f"version {expected} is stale: the stored version is {board.version}")


def _write(board, document, author, message, action, before):
    board.set_document(document)
    board.updated_by = author.name
    board.save()
    exported = board.export()
    DashboardVersion.objects.create(
        dashboard=board,
        version=board.version,
        document=exported,
        author=author.name,
        message=message[:MESSAGE_MAX_LENGTH],
    )
    record(
        action,
        f"dashboard {board.uid}",
        before=before,
        after=exported,
        actor=author.name,
        address=author.address,
    )
    _push(board, board.version, author.name)
    sharing.dashboard_changed(board)
    return board


def save(
    document, *, author, expected_version=None, message="", action=None, check_version=True, allowed=None
):
    """Create or replace the dashboard `document["uid"]` (validated here); returns it.

    `expected_version` must be the stored version (None when creating) unless
    `check_version` is off (import: a uid that exists is replaced). `allowed(board or
    None)`, when given, is called under the row's lock and raises to refuse. Raises
    `spec.InvalidDashboard`, `Conflict`, `Provisioned`."""
    document = spec.validate(document)
    uid = document["uid"]
    try:
        with transaction.atomic():
            board = _locked(uid)
            if allowed is not None:
                allowed(board)
            if board is not None and board.provisioned:
                raise Provisioned(
                    f"dashboard {uid} follows the file {board.provisioned_from}; save a copy instead"
                )
            if check_version:
                _check_version(board, expected_version)
            if board is None:
                board = Dashboard(uid=uid, owner=author.owner, version=1)
                before = None
            else:
                before = board.export()
                board.version += 1
            return _write(board, document, author, message, action or (CHANGE if before else CREATE), before)
    except IntegrityError:
        # Two creations of one uid at once: the second finds the first.
        raise Conflict(f"dashboard {uid} was created meanwhile; load it and try again") from None


def restore(uid, version, *, author, expected_version=None):
    """Save version `version`'s JSON as a new version (history is never rewritten)."""
    with transaction.atomic():
        board = _locked(uid)
        if board is None:
            raise NotFound(f"no dashboard {uid}")
        if board.provisioned:
            raise Provisioned(f"dashboard {uid} follows the file {board.provisioned_from}; restore it there")
        if expected_version is not None and expected_version != board.version:
            raise Conflict(f"version {expected_version} is stale: the stored version is {board.version}")
        old = board.versions.filter(version=version).first()
        if old is None:
            raise NotFound(f"dashboard {uid} has no version {version}")
        before = board.export()
        board.version += 1
        return _write(board, old.document, author, f"restored version {version}", RESTORE, before)


def delete(uid, *, author, expected_version=None, provisioning=False):
    """Delete the dashboard and its versions (the audit entry keeps its last JSON)."""
    with transaction.atomic():
        board = _locked(uid)
        if board is None:
            raise NotFound(f"no dashboard {uid}")
        if board.provisioned and not provisioning:
            raise Provisioned(f"dashboard {uid} follows the file {board.provisioned_from}; remove the file")
        if expected_version is not None and expected_version != board.version:
            raise Conflict(f"version {expected_version} is stale: the stored version is {board.version}")
        before = board.export()
        _push(board, None, author.name)  # its audience is read before the row goes
        sharing.dashboard_changed(board)  # and its links, before they go with it
        board.delete()
        record(DELETE, f"dashboard {uid}", before=before, actor=author.name, address=author.address)


def provision(document, source, signature):
    """Create or replace a dashboard from its file `source` (a name in DASHBOARDS_DIR);
    it follows that file from now on, whoever made it before. Raises `InvalidDashboard`."""
    document = spec.validate(document)
    author = Author(name="provisioning")
    with transaction.atomic():
        board = _locked(document["uid"])
        if board is None:
            board, before = Dashboard(uid=document["uid"], version=1), None
        else:
            before = board.export()
            unchanged = before == spec.ordered_document({**document, "version": board.version})
            if unchanged and board.provisioned_from == source:
                board.provisioned_signature = signature
                board.save(update_fields=["provisioned_signature"])
                return board
            board.version += 1
        board.provisioned_from, board.provisioned_signature = source, signature
        return _write(board, document, author, f"provisioned from {source}", PROVISION, before)

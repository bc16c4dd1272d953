"""Writing the audit log: `record()`, for the current actor (a request, a command)
or for the one the caller names (a consumer knows its user and client)."""

import logging

from audit.context import current_actor
from audit.models import AuditEntry

logger = logging.getLogger(__name__)


def record(action, target="", before=None, after=None, *, actor=None, address=None):
    """Store one entry; `actor`/`address` default to whoever is acting now."""
    if actor is None or address is None:
        current = current_actor()
        actor = current.username if actor is None else actor
        address = current.address if address is None else address
    return AuditEntry.objects.create(
        actor=str(actor)[:150],
        action=action[:64],
        target=str(target)[:200],
        address=str(address or "")[:64],
        before=before,
        after=after,
    )


def prune():
    """The collector's chore: drop entries past the retention."""
    deleted = AuditEntry.objects.prune()
    if deleted:
        logger.info("pruned %d audit entries older than the retention", deleted)
    return deleted

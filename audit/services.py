"""Writing the audit log. `record()` for the current actor (a request, a command);
`arecord()` from consumers, which know their user and client themselves."""

import logging

from asgiref.sync import sync_to_async

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


@sync_to_async
def arecord(action, target="", before=None, after=None, *, actor, address):
    return record(action, target, before, after, actor=actor, address=address)


def prune():
    """The collector's chore: drop entries past the retention."""
    deleted = AuditEntry.objects.prune()
    if deleted:
        logger.info("pruned %d audit entries older than the retention", deleted)
    return deleted

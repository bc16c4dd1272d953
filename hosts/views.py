"""`/hosts/`: every host, up or down, with its main values; revoking an enrolled host.

Seeing the page takes what seeing metrics takes (`dashboard.view_metric`); revoking
a host takes what changing API tokens takes (`api.change_apitoken`), as the admin's
token list does. Sorting and filtering are query parameters (`q`, `status`, `sort`),
so a filtered view is a link; the page's script keeps the rows live.
"""

import time
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from api.models import ApiToken
from audit.services import record
from dashboard.access import VIEW_PERMISSION, has_permission
from dashboard.views import page_context
from hosts import inventory, liveness

REVOKE_PERMISSION = "api.change_apitoken"
HISTORY_MINUTES = 15
# The host dashboard a host links to, its `host` variable set (boards' `var-NAME`).
HOST_BOARD_UID = "host-overview"


def may_revoke(user):
    return has_permission(user, REVOKE_PERMISSION)


def _columns(sort):
    """Each sortable column: its field, the link that sorts by it (again: the other way), aria-sort."""
    field, descending = inventory.parse_sort(sort)
    columns = {}
    for name in inventory.SORTS:
        current = name == field
        following = f"-{name}" if current and not descending else name
        aria = ("descending" if descending else "ascending") if current else None
        columns[name] = {"sort": following, "aria": aria}
    return columns


@require_GET
@login_required
def hosts_page(request):
    if not has_permission(request.user, VIEW_PERMISSION):
        return HttpResponseForbidden(_("Your account can't view metrics."))
    query = request.GET.get("q", "")[:256]
    status = request.GET.get("status", "")
    sort = request.GET.get("sort", "") or "name"
    now = time.time()
    try:
        rows = inventory.arrange(inventory.collect(now), query, status, sort)
    except ValueError as exc:
        message = _("Unknown value %(value)s: sort takes %(sorts)s, status takes %(statuses)s.") % {
            "value": repr(str(exc)),
            "sorts": ", ".join(inventory.SORTS),
            "statuses": ", ".join(inventory.STATUSES),
        }
        return HttpResponseBadRequest(message)
    for row in rows:
        seen = row["last_seen"]
        row["last_seen_at"] = None if seen is None else datetime.fromtimestamp(seen, tz=UTC)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"now": now, "hosts": rows})
    context = page_context(request)
    context["page_config"]["hosts"] = {
        "now": now,
        "rows": rows,
        "downIntervals": liveness.DOWN_INTERVALS,
        "defaultInterval": inventory.DEFAULT_INTERVAL_SECONDS,
        "metrics": list(inventory.METRICS),
        "historyMinutes": HISTORY_MINUTES,
        "boardUrl": reverse("board", args=[HOST_BOARD_UID]),
        "query": query,
        "status": status,
    }
    context.update(
        {
            "rows": rows,
            "query": query,
            "status": status,
            "statuses": inventory.STATUSES,
            "columns": _columns(sort),
            "sort": sort,
            "can_revoke": may_revoke(request.user),
            "board_url": reverse("board", args=[HOST_BOARD_UID]),
        }
    )
    return render(request, "hosts/list.html", context)


@require_POST
@login_required
def revoke_host(request):
    """Revoke every active token of an enrolled host: its agent is refused from now on
    (every worker within a second), the host leaves the page and its alert resolves."""
    if not may_revoke(request.user):
        return HttpResponseForbidden(_("Revoking a host needs the permission to change API tokens."))
    host = request.POST.get("host", "")
    with transaction.atomic():
        tokens = list(ApiToken.objects.active().select_for_update().filter(host=host).exclude(host=""))
        if not tokens:
            return HttpResponseBadRequest(_("No enrolled host is named %(host)s.") % {"host": repr(host)})
        for token in tokens:
            token.revoke()
        record("host.revoke", target=host, after={"tokens": [token.name for token in tokens]})
    liveness.forget(host)
    messages.success(request, _("Host %(host)s revoked: its token no longer works.") % {"host": host})
    return redirect(reverse("hosts"))

"""The pages of the dashboards people build: the list (`/dashboards/`), one dashboard
(`/d/UID/`, viewing and editing), a new one, and `/` (the home dashboard).

Who may see what is the boards models' rule (`Dashboard.can_view`, `visible_to`); a
dashboard the user may not see answers 404, as one that does not exist, so its uid
tells nothing. Saving goes through the JSON API from the page (boards.store behind
it), so the page and dashboards as code share one path and one conflict rule.
"""

import datetime
import secrets

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from boards import sharing, spec, store
from boards.models import Dashboard, HomeDashboard
from dashboard.live import STREAM_EVENT_TYPES
from dashboard.stream.channels import METRICS_CHANNEL, user_channel
from dashboard.views import index, page_context

# A new dashboard's uid: its title's slug and a random suffix, so two "Checkout"
# dashboards never collide.
SLUG_LENGTH = 30
DEFAULT_PANEL = {
    "id": 1,
    "title": "CPU",
    "type": "timeseries",
    "series": ["cpu"],
    "unit": "%",
    "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
}


def may_create(user):
    # The API's rule (api.dashboards.Caller.may_create): who may see metrics may build dashboards.
    return user.has_perm("dashboard.view_metric")


def _visible_or_404(user, uid):
    board = Dashboard.objects.select_related("owner").filter(uid=uid).first()
    if board is None or not board.can_view(user):
        raise Http404(_("No such dashboard."))
    return board


@require_GET
@login_required
def dashboard_list(request):
    q = request.GET.get("q", "")
    tag = request.GET.get("tag", "")
    visible = Dashboard.visible_to(request.user)
    context = {
        "boards": Dashboard.search(visible, q, tag),
        "q": q,
        "tag": tag,
        "tags": sorted({name for board in visible for name in board.tags}),
        "can_create": may_create(request.user),
        "home_uid": HomeDashboard.objects.filter(user=request.user).values_list("uid", flat=True).first(),
    }
    return render(request, "boards/list.html", context)


@require_POST
@login_required
def dashboard_new(request):
    """A new dashboard of one panel, owned by its maker, opened in the editor."""
    if not may_create(request.user):
        raise Http404(_("No such dashboard."))
    title = request.POST.get("title", "").strip()[: spec.TITLE_MAX_LENGTH] or _("New dashboard")
    uid = f"{slugify(title)[:SLUG_LENGTH] or 'dashboard'}-{secrets.token_hex(3)}"
    author = store.Author(name=request.user.get_username(), owner=request.user)
    store.save({"uid": uid, "title": title, "panels": [DEFAULT_PANEL]}, author=author, message="created")
    return redirect(reverse("board", args=[uid]) + "?edit=1")


def render_board(request, board):
    context = page_context(request)
    user = request.user
    config = context["page_config"]
    # A private dashboard's live changes come on the user's own channel.
    if config["stream"]["channels"]:
        config["stream"]["channels"].append(user_channel(user.pk))
    can_edit = board.can_edit(user)
    # Whoever may edit a dashboard may share it (the shares API's rule, api.dashboards).
    config["shares"] = {"url": f"/api/v1/dashboards/{board.uid}/shares"} if can_edit else None
    config["board"] = {
        "document": board.export(),
        "editable": can_edit and not board.provisioned,
        "provisioned": board.provisioned,
        "canCopy": may_create(user),
        "apiUrl": f"/api/v1/dashboards/{board.uid}",
        "listUrl": "/api/v1/dashboards",
        "labelsUrl": "/api/v1/labels/",
        "seriesUrl": "/api/v1/series",
        "pageUrl": reverse("board", args=[board.uid]),
        "variables": {
            key[len("var-") :]: request.GET.getlist(key) for key in request.GET if key.startswith("var-")
        },
        "edit": request.GET.get("edit") == "1" and can_edit and not board.provisioned,
    }
    context.update(
        {
            "board": board,
            "editable": config["board"]["editable"],
            "can_copy": config["board"]["canCopy"],
            "can_share": can_edit,
            "kiosk": request.GET.get("kiosk") == "1",
        }
    )
    return render(request, "boards/dashboard.html", context)


@require_GET
@login_required
def dashboard_page(request, uid):
    return render_board(request, _visible_or_404(request.user, uid))


@require_GET
@login_required
def home(request):
    """The user's home dashboard: their choice while it exists and they may see it, else
    the provisioned host overview (the contract's default) when they may see it; only
    without either, the page every user had before dashboards (every metric, in display
    order), so a fresh install that has not provisioned yet still shows something."""
    board = HomeDashboard.dashboard_for(request.user)
    if board is not None:
        return render_board(request, board)
    return index(request)


# --- share links: /s/TOKEN/ -----------------------------------------------------------
# The page of a share link is anonymous: it reads no session and sets no cookie (no
# form, so no CSRF cookie either; the language comes from the browser's own), and its
# scripts open no WebSocket. What it may read is boards.sharing's scope, enforced by the
# stream and history it reads; the page only draws.

SHARE_REFUSALS = {
    "unknown": (
        404,
        gettext_lazy("This share link does not exist. Check the address, or ask for a new link."),
    ),
    "revoked": (
        410,
        gettext_lazy("This share link was revoked: the dashboard is no longer shared through it."),
    ),
    "expired": (410, gettext_lazy("This share link has expired.")),
}


def _variable_choices(request, offered):
    """The `?var-NAME=` values of the address that the pickers offer; nothing else is kept."""
    choices = {}
    for name, values in offered.items():
        asked = request.GET.getlist(f"var-{name}")
        allowed = set(values)
        choices[name] = [value for value in asked if value == "$__all" or value in allowed]
    return choices


def _shared_document(board):
    """What a share page needs of the dashboard to draw it: not who may see it, nor its
    address on the site (its uid), nor its tags."""
    document = board.export()
    return {
        key: document[key]
        for key in ("title", "description", "window", "variables", "panels")
        if key in document
    }


def _share_refused(request, why):
    status, message = SHARE_REFUSALS[why]
    return render(request, "boards/share_refused.html", {"why": why, "message": message}, status=status)


@require_GET
@never_cache
def share_page(request, token):
    """One dashboard, read-only, for whoever holds the link (`?kiosk=1`: its panels only)."""
    link = sharing.resolve(token)
    board = Dashboard.objects.filter(pk=link.dashboard_id).first() if link is not None else None
    if board is None:
        return _share_refused(request, sharing.why_refused(token))
    offered = sharing.variable_values(board)
    page_url = sharing.url_of(token)
    config = {
        "user": None,
        "canViewMetrics": True,
        "canControl": False,
        "stream": {
            "url": reverse("events"),
            "channels": [METRICS_CHANNEL],
            "events": list(STREAM_EVENT_TYPES),
        },
        "metricsChannel": METRICS_CHANNEL,
        "historyUrl": reverse("metrics-history"),
        # The stream and history read the link's series with this; `stateUrl` tells the
        # page, when they refuse, whether the link was revoked or has expired.
        "share": {"token": token, "stateUrl": page_url + "state/", "expires": link.expires},
        "board": {
            "document": _shared_document(board),
            "editable": False,
            "provisioned": False,
            "canCopy": False,
            # The pickers offer what the link reaches, read here: the labels API is not anonymous.
            "options": offered,
            "pageUrl": page_url,
            "variables": _variable_choices(request, offered),
            "edit": False,
        },
    }
    context = {
        "board": board,
        "page_config": config,
        "kiosk": request.GET.get("kiosk") == "1",
        "expires": datetime.datetime.fromtimestamp(link.expires, tz=datetime.UTC) if link.expires else None,
    }
    return render(request, "boards/shared.html", context)


@require_GET
@never_cache
def share_state(request, token):
    """Whether a share link still works: 200, or 404/410 and why (the page asks when its
    stream or history is refused)."""
    link = sharing.resolve(token)
    if link is not None:
        return JsonResponse({"state": "live", "expires": link.expires})
    why = sharing.why_refused(token)
    return JsonResponse({"state": why}, status=SHARE_REFUSALS[why][0])

"""The pages of the dashboards people build: the list (`/dashboards/`), one dashboard
(`/d/UID/`, viewing and editing), a new one, and `/` when the user chose a home
dashboard.

Who may see what is the boards models' rule (`Dashboard.can_view`, `visible_to`); a
dashboard the user may not see answers 404, as one that does not exist, so its uid
tells nothing. Saving goes through the JSON API from the page (boards.store behind
it), so the page and dashboards as code share one path and one conflict rule.
"""

import secrets

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from boards import spec, store
from boards.models import Dashboard, HomeDashboard
from dashboard.stream.channels import user_channel
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
    config["board"] = {
        "document": board.export(),
        "editable": can_edit and not board.provisioned,
        "provisioned": board.provisioned,
        "canCopy": may_create(user),
        "apiUrl": f"/api/v1/dashboards/{board.uid}",
        "listUrl": "/api/v1/dashboards",
        "labelsUrl": "/api/v1/labels/",
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
    """The home dashboard the user chose, while it exists and they may see it; else the
    page every user had before dashboards (every metric, in display order)."""
    uid = HomeDashboard.objects.filter(user=request.user).values_list("uid", flat=True).first()
    board = Dashboard.objects.select_related("owner").filter(uid=uid).first() if uid else None
    if board is not None and board.can_view(request.user):
        return render_board(request, board)
    return index(request)

"""`/account/sessions/`: the signed-in user's sessions; end one, or all but this one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.models import UserSession


@never_cache
@require_GET
@login_required
def sessions(request):
    current = request.session.session_key
    listed = UserSession.objects.live_of(request.user)
    return render(
        request,
        "accounts/sessions.html",
        {"sessions": listed, "current_key": current, "others": any(s.session_key != current for s in listed)},
    )


@never_cache
@require_POST
@login_required
def end_session(request, session_id):
    found = UserSession.objects.filter(user=request.user, pk=session_id).first()
    if found is None or found.session_key == request.session.session_key:
        # Someone else's, gone already, or this one (that is signing out): nothing to end here.
        messages.error(request, _("That session cannot be ended here."))
    else:
        found.end()
        messages.info(request, _("The session was ended."))
    return redirect("account-sessions")


@never_cache
@require_POST
@login_required
def end_other_sessions(request):
    ended = UserSession.end_all_but(request.user, request.session.session_key)
    messages.info(request, _("Other sessions ended: %(count)d.") % {"count": ended})
    return redirect("account-sessions")

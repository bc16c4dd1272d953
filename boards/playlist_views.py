"""`/playlists/UID/`: a playlist's dashboards in turn, full screen (static/js/playlist.js).

The page is a frame host: each dashboard is loaded in kiosk mode (`/d/UID/?kiosk=1`,
or `/s/TOKEN/?kiosk=1` for a share's anonymous viewer) into one of two iframes, the
next one behind the current until it has loaded. The host page itself holds no stream
and changes nothing, so a screen can run it for weeks: every dashboard is a fresh page
each turn (nothing accumulates), a dashboard that fails to load (a worker restarting,
the network gone) leaves the last one on screen and is tried again on its next turn,
and the host reloads itself only after checking that its own address answers.

Signed-in viewers see the dashboards of the playlist they may see; `?share=TOKEN`
(boards.playlists.resolve) shows an anonymous viewer the share's links, nothing more.
A playlist the viewer may not see answers 404, as one that does not exist.
"""

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from boards import playlists
from boards.models import Playlist
from boards.sharing import url_of

KIOSK = "?kiosk=1"


def _page(request, playlist, entries, shared):
    config = {
        "title": playlist.title,
        "interval": playlist.interval,
        "entries": entries,
        # After a full turn at least this long after loading, the host reloads itself to
        # pick up a changed playlist (once its own address answers).
        "refreshSeconds": 3600,
    }
    response = render(
        request,
        "boards/playlist.html",
        {"playlist": playlist, "playlist_config": config, "shared": shared},
    )
    if shared:
        # The token is in this page's address: it must not leave in a Referer.
        response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def playlist_page(request, uid):
    token = request.GET.get("share")
    if token is not None:
        found = playlists.resolve(uid, token)
        if found is None:
            raise Http404(_("No such playlist."))
        playlist, shown = found
        entries = [{"title": board.title, "url": url_of(link_token) + KIOSK} for board, link_token in shown]
        return _page(request, playlist, entries, shared=True)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    playlist = Playlist.objects.select_related("owner").filter(uid=uid).first()
    if playlist is None or not playlist.can_view(request.user):
        raise Http404(_("No such playlist."))
    boards = playlists.shown_to(playlist, request.user)
    entries = [{"title": board.title, "url": reverse("board", args=[board.uid]) + KIOSK} for board in boards]
    return _page(request, playlist, entries, shared=False)

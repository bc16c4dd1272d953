"""The page's view of a user's own delivery channels: list them, pause or resume one,
send one a test, remove one, and add an apprise channel of their own.

Only channels the user owns are listed or changed; group and everyone channels
are managed in the admin. Another user's channel answers 404, as one that does
not exist, so ids reveal nothing.

Adding needs `notifications.add_deliverychannel`: an apprise URL may name any host
(`json://`, `ntfy://`, self-hosted services), and its test is sent from the server,
so who may point the server at a host is a grant, not everyone's.
"""

import json

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from notifications.delivery import DeliveryError, send_test
from notifications.models import DeliveryChannel, Level

ADD_PERMISSION = "notifications.add_deliverychannel"


def can_add_channels(user):
    return user.is_authenticated and user.has_perm(ADD_PERMISSION)


def _refuse_anonymous(request):
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Log in to see your delivery channels"}, status=403)
    return None


def _json(request):
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None


@never_cache
@require_http_methods(["GET", "POST"])
def my_channels(request):
    refused = _refuse_anonymous(request)
    if refused:
        return refused
    if request.method == "POST":
        return _add_channel(request)
    channels = DeliveryChannel.objects.owned_by(request.user)
    return JsonResponse({"channels": [channel.as_dict() for channel in channels]})


def _add_channel(request):
    """`{"kind": "apprise", "target": URL, "min_level"?}` → 201 with the channel (its URL
    masked); 400 naming what is wrong, without echoing the URL's secrets."""
    if not can_add_channels(request.user):
        return JsonResponse({"error": "you may not add delivery channels"}, status=403)
    data = _json(request)
    if not isinstance(data, dict) or not set(data) <= {"kind", "target", "min_level"}:
        return JsonResponse({"error": 'send {"kind": "apprise", "target": URL, "min_level"?}'}, status=400)
    if data.get("kind") != DeliveryChannel.Kind.APPRISE:
        return JsonResponse({"error": "only apprise channels are added here"}, status=400)
    target, level = data.get("target"), data.get("min_level", Level.INFO)
    if not isinstance(target, str) or not target.strip():
        return JsonResponse({"error": "target must be an apprise URL"}, status=400)
    if level not in Level.values:
        return JsonResponse({"error": f"min_level must be one of {', '.join(Level.values)}"}, status=400)
    channel = DeliveryChannel(kind=DeliveryChannel.Kind.APPRISE, target=target, min_level=level)
    channel.owner_user = request.user
    try:
        channel.full_clean()
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    channel.save()
    return JsonResponse(channel.as_dict(), status=201)


@never_cache
@require_POST
def test_channel(request, channel_id):
    """Send one of the user's channels a test now; the outcome says whether it went out."""
    refused = _refuse_anonymous(request)
    if refused:
        return refused
    channel = DeliveryChannel.objects.owned_by(request.user).filter(pk=channel_id).first()
    if channel is None:
        return JsonResponse({"error": f"no channel {channel_id}"}, status=404)
    try:
        send_test(channel, sent_by=request.user)
    except DeliveryError as exc:
        return JsonResponse({"sent": False, "error": str(exc)})
    return JsonResponse({"sent": True})


@never_cache
@require_http_methods(["POST", "DELETE"])
def update_channel(request, channel_id):
    refused = _refuse_anonymous(request)
    if refused:
        return refused
    channel = DeliveryChannel.objects.owned_by(request.user).filter(pk=channel_id).first()
    if channel is None:
        return JsonResponse({"error": f"no channel {channel_id}"}, status=404)
    if request.method == "DELETE":
        channel.delete()
        return HttpResponse(status=204)
    data = _json(request)
    if data is None:
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    paused = data.get("paused") if isinstance(data, dict) else None
    if not isinstance(paused, bool) or set(data) != {"paused"}:
        return JsonResponse({"error": 'send {"paused": true} or {"paused": false}'}, status=400)
    channel.paused = paused
    channel.save(update_fields=["paused"])
    return JsonResponse(channel.as_dict())

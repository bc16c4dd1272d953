"""The page's view of a user's own delivery channels: list them, pause or resume one.

Only channels the user owns are listed or changed; group and everyone channels
are managed in the admin. Another user's channel answers 404, as one that does
not exist, so ids reveal nothing.
"""

import json

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from notifications.models import DeliveryChannel


def _refuse_anonymous(request):
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Log in to see your delivery channels"}, status=403)
    return None


@never_cache
@require_GET
def my_channels(request):
    refused = _refuse_anonymous(request)
    if refused:
        return refused
    channels = DeliveryChannel.objects.owned_by(request.user)
    return JsonResponse({"channels": [channel.as_dict() for channel in channels]})


@never_cache
@require_POST
def update_channel(request, channel_id):
    refused = _refuse_anonymous(request)
    if refused:
        return refused
    channel = DeliveryChannel.objects.owned_by(request.user).filter(pk=channel_id).first()
    if channel is None:
        return JsonResponse({"error": f"no channel {channel_id}"}, status=404)
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    paused = data.get("paused") if isinstance(data, dict) else None
    if not isinstance(paused, bool) or set(data) != {"paused"}:
        return JsonResponse({"error": 'send {"paused": true} or {"paused": false}'}, status=400)
    channel.paused = paused
    channel.save(update_fields=["paused"])
    return JsonResponse(channel.as_dict())

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from api.handler import TokenRequests  # noqa: E402
from dashboard.control.auth import ConcurrentAuthMiddlewareStack  # noqa: E402
from dashboard.control.routing import websocket_urlpatterns  # noqa: E402
from dashboard.origins import ExactOriginValidator  # noqa: E402
from dashboard.stream.app import DirectStreams  # noqa: E402
from dashboard.stream.grip import ProxiedStreamConnects  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Stream GETs are served without Django's request cycle (dashboard.stream.app);
        # behind Pushpin (GRIP_URL), the connects it forwards are answered the same lean way;
        # the API's token endpoints skip the page middlewares (api.handler).
        "http": TokenRequests(ProxiedStreamConnects(DirectStreams(django_asgi_app))),
        # Handshakes look up their user in parallel, not one at a time on one thread;
        # only pages of this site's exact origins get that far (dashboard/origins.py).
        "websocket": ExactOriginValidator(ConcurrentAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

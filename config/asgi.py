import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models (consumers, routing).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.control.auth import ConcurrentAuthMiddlewareStack  # noqa: E402
from dashboard.control.routing import websocket_urlpatterns  # noqa: E402
from dashboard.origins import ExactOriginValidator  # noqa: E402
from dashboard.stream.grip import ProxiedStreamConnects  # noqa: E402
from dashboard.stream.views import SharedThreadForStreams, StreamHandler  # noqa: E402

application = ProtocolTypeRouter(
    {
        # SSE streams share one thread for Django's sync steps instead of one each;
        # behind Pushpin (GRIP_URL), the connects it forwards skip the middleware chain.
        "http": SharedThreadForStreams(
            ProxiedStreamConnects(django_asgi_app), streams=ProxiedStreamConnects(StreamHandler())
        ),
        # Handshakes look up their user in parallel, not one at a time on one thread;
        # only pages of this site's exact origins get that far (dashboard/origins.py).
        "websocket": ExactOriginValidator(ConcurrentAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

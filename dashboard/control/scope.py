"""What a socket's connect scope says besides who it is: the page's language and the
last notification the page already has."""

from types import SimpleNamespace
from urllib.parse import parse_qs

from django.utils import translation


def language_from_scope(scope):
    """The page's language for this socket, chosen as for the page itself: the
    language cookie /i18n/setlang/ sets, else Accept-Language, else the default."""
    headers = dict(scope.get("headers") or [])
    request = SimpleNamespace(
        COOKIES=scope.get("cookies") or {},
        META={"HTTP_ACCEPT_LANGUAGE": headers.get(b"accept-language", b"").decode("latin-1")},
        path_info="/",
    )
    return translation.get_language_from_request(request)


def last_notification_from(query_string):
    """`?last_notification=<id>` from the connect URL; anything else is ignored."""
    try:
        values = parse_qs(query_string.decode("latin-1")).get("last_notification", [])
    except ValueError:
        return None
    raw = values[-1] if values else ""
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None

"""`manage.py check --deploy` checks for what Django's own deploy checks can't know."""

from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core import checks

# Pushpin's sample config ships this one; a key anyone can read is no key.
KNOWN_GRIP_KEYS = {"changeme", "secret", "key"}
GRIP_KEY_MIN_LENGTH = 32


def grip_key(url):
    return parse_qs(urlsplit(url).query).get("key", [""])[0]


@checks.register(checks.Tags.security, deploy=True)
def check_grip_key(app_configs, **kwargs):
    """GRIP_URL must carry a real signing key, or any client may pass as Pushpin."""
    url = getattr(settings, "GRIP_URL", None)
    if not url:
        return []
    key = grip_key(url)
    if not key:
        return [
            checks.Error(
                "GRIP_URL has no signing key, so any request with a Grip-Sig header passes as Pushpin's.",
                hint="Add ?key=SECRET to GRIP_URL, the same secret as Pushpin's sig_key.",
                id="livedash.E001",
            )
        ]
    if key.lower() in KNOWN_GRIP_KEYS or len(key) < GRIP_KEY_MIN_LENGTH:
        return [
            checks.Error(
                f"GRIP_URL's signing key is guessable (shorter than {GRIP_KEY_MIN_LENGTH} characters "
                "or a sample value).",
                hint='Generate one: python3 -c "import secrets; print(secrets.token_urlsafe(48))"',
                id="livedash.E002",
            )
        ]
    return []

"""Secrets kept at rest encrypted: apprise URLs carry tokens and passwords
(`tgram://BOT_TOKEN/CHAT`, `slack://T/B/C`), so a database dump or backup must
not hand them out.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) keyed with a key
derived from SECRET_KEY by HKDF, so there is no second key to manage. Rotating
SECRET_KEY makes the sealed values unreadable: those channels must be entered
again (their deliveries fail with an error saying so, nothing is sent elsewhere).
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Binds the derived key to this one use: another use of SECRET_KEY derives another key.
PURPOSE = b"livedash delivery channel secrets"


def _fernet():
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text):
    return _fernet().encrypt(text.encode()).decode()


def unseal(token):
    """The text sealed in `token`; `ValueError` when it cannot be read (SECRET_KEY changed)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise ValueError("the stored secret cannot be decrypted (was SECRET_KEY changed?)") from None

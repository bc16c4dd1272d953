"""Scrape targets' bearer tokens kept at rest encrypted: a database dump or backup must
not hand out a credential for another service.

Fernet keyed with a key derived from SECRET_KEY by HKDF for this one use (the same
scheme as notifications/sealing.py, another purpose, so another key). Rotating
SECRET_KEY makes the sealed tokens unreadable: the target's scrapes then fail with an
error saying so until its token is entered again.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PURPOSE = b"livedash scrape target bearer tokens"


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
        raise ValueError("the stored bearer token cannot be decrypted (was SECRET_KEY changed?)") from None

"""Secrets kept at rest encrypted, so a database dump or backup does not hand out a
credential for another service: apprise URLs carry tokens and passwords
(notifications), scrape targets carry bearer tokens (scrape).

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) keyed with a key derived
from SECRET_KEY by HKDF, so there is no second key to manage. Each use names its
purpose, which binds the derived key to it: another use derives another key.
Rotating SECRET_KEY makes the sealed values unreadable; `unseal` then says so and the
user of the value reports it (nothing is sent elsewhere).
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class Sealer:
    def __init__(self, purpose, what):
        self.purpose = purpose.encode()
        self.what = what  # named in the error when a value cannot be read

    def _fernet(self):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self.purpose).derive(
            settings.SECRET_KEY.encode()
        )
        return Fernet(base64.urlsafe_b64encode(key))

    def seal(self, text):
        return self._fernet().encrypt(text.encode()).decode()

    def unseal(self, token):
        """The text sealed in `token`; `ValueError` when it cannot be read (SECRET_KEY changed)."""
        try:
            return self._fernet().decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            message = f"the stored {self.what} cannot be decrypted (was SECRET_KEY changed?)"
            raise ValueError(message) from None

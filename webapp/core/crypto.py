"""Encryption at rest for the few secrets the database holds (judge endpoints' API keys).

Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` package) with a key derived by
HKDF from `SECRET_KEY`, so a database dump or backup alone does not reveal the keys. When
`SECRET_KEY` changes, list the old value in `SECRET_KEY_FALLBACKS`: values encrypted with
it still decrypt (and are re-encrypted with the new key when saved again). Without it they
cannot be read; the admin enters them again.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "fernet:"  # marks an encrypted value (and lets a migration tell old plaintext apart)


class DecryptionError(ValueError):
    pass


def _fernet_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"rft-studio", info=b"secrets-at-rest")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


@lru_cache(maxsize=4)
def _fernet(secret: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(s)) for s in (secret, *fallbacks)])


def _current() -> MultiFernet:
    return _fernet(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def encrypt(plaintext: str) -> str:
    """The stored form of a secret; the empty string stays empty (no secret set)."""
    if not plaintext:
        return ""
    return PREFIX + _current().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    """The secret back; raises `DecryptionError` when it was encrypted with another key."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise DecryptionError("the value is not encrypted (run the migrations)")
    try:
        return _current().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "it was encrypted with another SECRET_KEY; add the old key to SECRET_KEY_FALLBACKS "
            "or enter the secret again"
        ) from None


def needs_rotation(stored: str) -> bool:
    """Whether `stored` decrypts only with a fallback key (re-encrypt it with the current one)."""
    if not stored:
        return False
    try:
        Fernet(_fernet_key(settings.SECRET_KEY)).decrypt(stored[len(PREFIX) :].encode())
    except InvalidToken:
        return True
    return False

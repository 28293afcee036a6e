"""Webhook signing secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key is CUSTODY_WEBHOOK_SECRET_KEY (any string; a Fernet key is derived from it), or one
derived from SECRET_KEY. Rotation: set the new key, put the old one in
CUSTODY_WEBHOOK_SECRET_OLD_KEYS (still decrypts), run `manage.py rotate_webhook_secrets`,
then drop the old key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _fernet(material: str) -> Fernet:
    digest = hashlib.sha256(b"custody-webhook-secrets\x00" + material.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    current = settings.CUSTODY_WEBHOOK_SECRET_KEY or settings.SECRET_KEY
    return MultiFernet(
        [_fernet(current), *(_fernet(k) for k in settings.CUSTODY_WEBHOOK_SECRET_OLD_KEYS)]
    )


def encrypt(secret: str) -> str:
    return _keys().encrypt(secret.encode("utf-8")).decode("ascii") if secret else ""


def decrypt(token: str) -> str:
    """The secret, or "" when there is none. A token no configured key opens is an
    operator's mistake (a key dropped too early): said plainly."""
    if not token:
        return ""
    try:
        return _keys().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise RuntimeError(
            "A webhook secret cannot be decrypted with CUSTODY_WEBHOOK_SECRET_KEY or "
            "CUSTODY_WEBHOOK_SECRET_OLD_KEYS (was a key removed before rotating?)"
        ) from None


def rotate(token: str) -> str:
    return _keys().rotate(token.encode("ascii")).decode("ascii") if token else ""

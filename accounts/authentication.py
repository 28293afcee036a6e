"""HTTP basic and bearer authentication for API clients (the MLflow client sends credentials
on every request; the UI and admin use sessions).

Basic passwords are checked with Django's slow password hasher once, then remembered per
process against the stored hash, so steady traffic does not pay a PBKDF2 round per call.

Tokens (by their hash) and users (by username) come from per-process caches of the `access`
family (`core.process_cache`): a revoke, a deactivation or a password change gives the family
a new version in its own transaction, and every worker drops the caches within
`CUSTODY_CACHE_POLL_SECONDS` (0.5 s) of the commit. Expiry is checked on every request."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken, hash_token
from accounts.throttle import check_not_throttled, record_failed_login
from core import process_cache
from core.errors import Unauthenticated

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class AuthResult:
    user: object
    method: str
    token: ApiToken | None = None


class _VerifiedPasswords:
    """A small LRU of (user id, password digest) -> the stored hash it was verified against."""

    def __init__(self, size: int = 4096):
        self._items: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    @staticmethod
    def _digest(password: str) -> str:
        return hmac.new(
            settings.SECRET_KEY.encode(), password.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

    def is_verified(self, user, password: str) -> bool:
        with self._lock:
            stored = self._items.get((user.pk, self._digest(password)))
            return stored is not None and stored == user.password

    def remember(self, user, password: str) -> None:
        with self._lock:
            self._items[(user.pk, self._digest(password))] = user.password
            self._items.move_to_end((user.pk, self._digest(password)))
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_verified = _VerifiedPasswords()

# Known tokens by hash and users by username (unknown ones are not remembered, so guesses
# cannot fill the cache).
_tokens = process_cache.Store(process_cache.ACCESS, "tokens")
_users = process_cache.Store(process_cache.ACCESS, "users")


def _cached_token(raw: str) -> ApiToken | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(raw)
    process_cache.refresh()
    return _tokens.get_or_load(
        digest,
        lambda: ApiToken.objects.select_related("user").filter(token_hash=digest).first(),
        keep_none=False,
    )


def _token_user(raw: str) -> AuthResult:
    cached = _cached_token(raw)
    if cached is None or not cached.is_usable or not cached.user.is_active:
        raise Unauthenticated("The API token is invalid, expired or revoked.")
    now = timezone.now()
    if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
        # Recorded at minute resolution: a write per request would cost more than the request.
        ApiToken.objects.filter(pk=cached.pk).update(last_used_at=now)
        cached.last_used_at = now
    # Each request gets its own instances: the cached ones are shared between threads.
    token = process_cache.request_copy(cached)
    token.user = process_cache.request_copy(cached.user)
    return AuthResult(user=token.user, method="token", token=token)


def _cached_user(username: str):
    process_cache.refresh()
    cached = _users.get_or_load(
        username,
        lambda: get_user_model().objects.filter(username=username).first(),
        keep_none=False,
    )
    return process_cache.request_copy(cached) if cached is not None else None


def _basic(credentials: str, client_ip: str) -> AuthResult:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("Malformed Basic credentials.") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise Unauthenticated("Malformed Basic credentials: expected 'username:password'.")
    if password.startswith(TOKEN_PREFIX):
        # A token is not a guessable password: the lock holds for it as for a remembered one.
        check_not_throttled(username, client_ip, remembered=True)
        try:
            result = _token_user(password)
        except Unauthenticated:
            record_failed_login(username, client_ip)
            raise
        if result.user.get_username() != username:
            record_failed_login(username, client_ip)
            raise Unauthenticated("The API token does not belong to this user.")
        return result
    user = _cached_user(username)
    # Only the password this process verified against the stored hash skips the stored
    # count's read; every guess reads it, so the lock counts guesses exactly.
    remembered = user is not None and user.is_active and _verified.is_verified(user, password)
    check_not_throttled(username, client_ip, remembered=remembered)
    if remembered:
        return AuthResult(user=user, method="basic")
    if user is None or not user.is_active:
        # Hash the password anyway, as Django's ModelBackend does: refused in the time a wrong
        # password takes, so the answer's timing does not tell which usernames exist.
        get_user_model()().set_password(password)
        record_failed_login(username, client_ip)
        raise Unauthenticated("Invalid username or password.")
    if not user.check_password(password):
        record_failed_login(username, client_ip)
        raise Unauthenticated("Invalid username or password.")
    _verified.remember(user, password)
    return AuthResult(user=user, method="basic")


def authenticate_header(header: str, client_ip: str) -> AuthResult:
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return _basic(credentials, client_ip)
    if scheme == "bearer":
        return _token_user(credentials.strip())
    raise Unauthenticated("Unsupported Authorization scheme; use Basic or Bearer.")

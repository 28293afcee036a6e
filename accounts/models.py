"""Identity: API tokens (users and roles are Django's users and groups).

A token is shown once; only its SHA-256 is stored. Tokens are 256-bit random strings, so a
plain SHA-256 (not a slow password hash) is enough to make a leaked table useless, and it
keeps bearer authentication to one indexed lookup."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "cust_"


class Role(models.TextChoices):
    DATA_SCIENTIST = "data-scientist"
    REVIEWER = "reviewer"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters, to recognise a token in lists without revealing it.
    display_prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="token_user_idx")]

    def __str__(self) -> str:
        return f"{self.display_prefix}… ({self.name})"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class LoginFailureCounter(models.Model):
    """Failed sign-ins per (username, client address) in the current window, shared by every
    process when Redis is not configured (see accounts.throttle)."""

    # SHA-256 of username and address: the table does not keep a list of attempted names.
    key = models.CharField(max_length=64, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["window_started_at"], name="login_failure_window_idx")]

    def __str__(self) -> str:
        return f"{self.key[:12]}… {self.failures} since {self.window_started_at:%H:%M:%S}"

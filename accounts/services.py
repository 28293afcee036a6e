"""Writes to identity state: users, roles and tokens, each audited in its transaction."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken, Role, hash_token
from audit import services as audit
from core.errors import InvalidParameterValue, ResourceAlreadyExists

User = get_user_model()


def _user_snapshot(user) -> dict:
    return {
        "username": user.get_username(),
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "roles": sorted(user.groups.values_list("name", flat=True)),
    }


@transaction.atomic
def user_create(*, username: str, role: str, password: str | None = None, email: str = ""):
    if role not in Role.values:
        raise InvalidParameterValue(
            f"Unknown role {role!r}. Allowed roles: {', '.join(Role.values)}."
        )
    if not username or username.strip() != username or len(username) > 150:
        raise InvalidParameterValue("A username is 1-150 characters without surrounding spaces.")
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        raise ResourceAlreadyExists(f"A user named {username!r} already exists.") from None
    if role == Role.ADMIN:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    elif role in (Role.REVIEWER, Role.COMPLIANCE):
        user.is_staff = True  # the admin is the reviewers' and compliance officers' console
        user.save(update_fields=["is_staff"])
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    audit.record(
        action="user.create",
        object_type="user",
        object_id=user.pk,
        object_name=username,
        after=_user_snapshot(user),
    )
    return user


@transaction.atomic
def token_create(*, user, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Returns the token row and the raw token, which is never stored or shown again."""
    if not name or len(name) > 100:
        raise InvalidParameterValue("A token name is 1-100 characters.")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidParameterValue("expires_in_days must be between 1 and 3650.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        token_hash=hash_token(raw),
        display_prefix=raw[: len(TOKEN_PREFIX) + 6],
        expires_at=(timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None),
    )
    audit.record(
        action="token.create",
        object_type="api_token",
        object_id=token.pk,
        object_name=name,
        after={
            "user": user.get_username(),
            "display_prefix": token.display_prefix,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(
        action="token.revoke",
        object_type="api_token",
        object_id=token.pk,
        object_name=token.name,
        before={"revoked": False},
        after={"revoked": True, "user": token.user.get_username()},
    )
    return token


@transaction.atomic
def user_set_active(*, user, is_active: bool):
    user = User.objects.select_for_update().get(pk=user.pk)
    before = _user_snapshot(user)
    user.is_active = is_active
    user.save(update_fields=["is_active"])
    audit.record(
        action="user.activate" if is_active else "user.deactivate",
        object_type="user",
        object_id=user.pk,
        object_name=user.get_username(),
        before=before,
        after=_user_snapshot(user),
    )
    return user

"""Writes to identity state: users, roles and tokens, each audited in its transaction."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, ApiToken, Role, hash_token
from audit import services as audit
from core.errors import InvalidParameterValue, ResourceAlreadyExists

User = get_user_model()


# The fields an administrator may change on a user (the password has its own service).
USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
)


def _permission_names(permissions) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


def _user_snapshot(user) -> dict:
    """What the trail shows of a user: never the password hash."""
    return {
        **{name: getattr(user, name) for name in USER_FIELDS},
        "roles": sorted(user.groups.values_list("name", flat=True)),
        "permissions": _permission_names(user.user_permissions.select_related("content_type")),
    }


def _group_snapshot(group) -> dict:
    return {
        "name": group.name,
        "permissions": _permission_names(group.permissions.select_related("content_type")),
    }


def _active_action(is_active: bool) -> str:
    """The action for a change of is_active, whichever path (service, admin) makes it."""
    return "user.activate" if is_active else "user.deactivate"


def _record_user(action: str, user, before: dict | None, after: dict | None) -> None:
    audit.record(
        action=action,
        object_type="user",
        object_id=user.pk,
        object_name=user.get_username(),
        before=before,
        after=after,
    )


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
    _record_user("user.create", user, None, _user_snapshot(user))
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
    _record_user(_active_action(is_active), user, before, _user_snapshot(user))
    return user


@transaction.atomic
def user_update(*, user):
    """Saves the changes made to `user`'s own fields (as the admin's change form does) and
    records what changed: a change of is_active as `user.activate` / `user.deactivate` (as
    `user_set_active` records it), any other change as `user.update`. The password is kept
    as stored: it changes through `user_set_password` only."""
    stored = User.objects.select_for_update().get(pk=user.pk)
    before = _user_snapshot(stored)
    changed = [name for name in USER_FIELDS if getattr(stored, name) != getattr(user, name)]
    if not changed:
        return user
    user.password = stored.password
    try:
        with transaction.atomic():
            user.save(update_fields=changed)
    except IntegrityError:
        raise ResourceAlreadyExists(
            f"A user named {user.get_username()!r} already exists."
        ) from None
    after = _user_snapshot(user)
    if "is_active" not in changed:
        _record_user("user.update", user, before, after)
        return user
    if changed != ["is_active"]:
        # The other fields first, then the change of is_active, so each event's before and
        # after differ only in what it names.
        middle = {**after, "is_active": before["is_active"]}
        _record_user("user.update", user, before, middle)
        before = middle
    _record_user(_active_action(user.is_active), user, before, after)
    return user


@transaction.atomic
def user_set_roles(*, user, groups):
    """Makes `groups` (roles are groups) exactly the user's groups."""
    user = User.objects.select_for_update().get(pk=user.pk)
    before = _user_snapshot(user)
    user.groups.set(groups)
    after = _user_snapshot(user)
    if after["roles"] != before["roles"]:
        _record_user("user.roles.set", user, before, after)
    return user


def role_flags(roles) -> dict[str, bool]:
    """What the roles make of a user in the admin: admins are superusers; reviewers and
    compliance officers are staff (the admin is their console); data scientists neither."""
    return {
        "is_superuser": Role.ADMIN in roles,
        "is_staff": bool({Role.ADMIN, Role.REVIEWER, Role.COMPLIANCE} & set(roles)),
    }


@transaction.atomic
def user_set_roles_and_teams(*, user, roles: list[str], teams=()):
    """Makes `roles` (at least one of Role) and `teams` (groups that are not roles) exactly the
    user's groups, with the admin flags the roles imply (role_flags): one audited
    `user.roles.set`. How the admin edits a user, instead of Django's permission list."""
    unknown = sorted(set(roles) - set(Role.values))
    if unknown or not roles:
        raise InvalidParameterValue(
            f"Choose at least one role from {', '.join(Role.values)}"
            + (f"; unknown: {', '.join(unknown)}." if unknown else ".")
        )
    if any(team.name in Role.values for team in teams):
        raise InvalidParameterValue("A team is a group that is not a role.")
    user = User.objects.select_for_update().get(pk=user.pk)
    before = _user_snapshot(user)
    groups = [Group.objects.get_or_create(name=role)[0] for role in roles] + list(teams)
    user.groups.set(groups)
    for flag, value in role_flags(roles).items():
        setattr(user, flag, value)
    user.save(update_fields=["is_staff", "is_superuser"])
    after = _user_snapshot(user)
    if after != before:
        _record_user("user.roles.set", user, before, after)
    return user


@transaction.atomic
def user_set_permissions(*, user, permissions):
    """Makes `permissions` exactly the user's own (not their groups') permissions."""
    user = User.objects.select_for_update().get(pk=user.pk)
    before = _user_snapshot(user)
    user.user_permissions.set(permissions)
    after = _user_snapshot(user)
    if after["permissions"] != before["permissions"]:
        _record_user("user.permissions.set", user, before, after)
    return user


@transaction.atomic
def user_set_password(*, user, password: str | None):
    """Sets the password (None: password sign-in disabled). The trail records only that it
    changed, never a hash."""
    stored = User.objects.select_for_update().get(pk=user.pk)
    had_password = stored.has_usable_password()
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    _record_user(
        "user.password.change",
        user,
        {"password": "set" if had_password else "unusable"},
        {"password": "changed" if password is not None else "unusable"},
    )
    return user


@transaction.atomic
def user_delete(*, user) -> None:
    stored = User.objects.select_for_update().get(pk=user.pk)
    before = {**_user_snapshot(stored), "api_tokens": stored.api_tokens.count()}
    pk = stored.pk
    stored.delete()
    stored.pk = pk
    _record_user("user.delete", stored, before, None)


@transaction.atomic
def group_save(*, group):
    """Creates or renames a group (a role); its permissions go through
    `group_set_permissions`."""
    stored = Group.objects.select_for_update().filter(pk=group.pk).first() if group.pk else None
    if stored is not None and stored.name == group.name:
        return group
    before = _group_snapshot(stored) if stored is not None else None
    try:
        with transaction.atomic():
            group.save()
    except IntegrityError:
        raise ResourceAlreadyExists(f"A group named {group.name!r} already exists.") from None
    audit.record(
        action="group.update" if stored is not None else "group.create",
        object_type="group",
        object_id=group.pk,
        object_name=group.name,
        before=before,
        after=_group_snapshot(group),
    )
    return group


@transaction.atomic
def group_set_permissions(*, group, permissions):
    group = Group.objects.select_for_update().get(pk=group.pk)
    before = _group_snapshot(group)
    group.permissions.set(permissions)
    after = _group_snapshot(group)
    if after != before:
        audit.record(
            action="group.permissions.set",
            object_type="group",
            object_id=group.pk,
            object_name=group.name,
            before=before,
            after=after,
        )
    return group


@transaction.atomic
def group_delete(*, group) -> None:
    stored = Group.objects.select_for_update().get(pk=group.pk)
    before = {
        **_group_snapshot(stored),
        "members": sorted(stored.user_set.values_list("username", flat=True)),
    }
    pk, name = stored.pk, stored.name
    stored.delete()
    audit.record(
        action="group.delete",
        object_type="group",
        object_id=pk,
        object_name=name,
        before=before,
    )


@transaction.atomic
def user_import(*, username: str, source: dict) -> tuple[Any, bool]:
    """The Custody user for a name found in imported MLflow history (a run's or a version's
    user): the existing one, or a new inactive user without a usable password and without a
    role, who can sign in only once an administrator activates them. Answers (user, created)."""
    if not username or username.strip() != username or len(username) > 150:
        raise InvalidParameterValue("A username is 1-150 characters without surrounding spaces.")
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, False
    user = User(username=username, is_active=False)
    user.set_unusable_password()
    user.save()
    _record_user("user.import", user, None, {**_user_snapshot(user), "source": source})
    return user, True

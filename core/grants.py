"""Grants on one object to users or groups (roles), shared by experiments and registered
models: read them, replace them (audited), and give a creator MANAGE."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import models

from core import access, process_cache
from core.errors import InvalidParameterValue

# (permission model, owner id) -> [(user_id, group_id, level)]. The apps bump the `access`
# family whenever a grant row is saved or deleted, and their grant services bump it too
# (bulk writes send no signals).
_GRANTS = process_cache.Store(process_cache.ACCESS, "grants", size=50_000)


def grant_rows(permission_model: type[models.Model], owner_field: str, owner_id: Any) -> list:
    """The grants on one object, from the process's access cache. Read-only: shared."""
    process_cache.refresh()
    return _GRANTS.get_or_load(
        (permission_model._meta.label, owner_field, owner_id),
        lambda: list(
            permission_model._default_manager.filter(**{owner_field: owner_id}).values_list(
                "user_id", "group_id", "level"
            )
        ),
    )


def grants_payload(permission_model, owner_field: str, owner_id: Any) -> list[dict[str, str]]:
    rows = permission_model.objects.filter(**{owner_field: owner_id}).select_related(
        "user", "group"
    )
    return sorted(
        (
            {"user": row.user.get_username(), "level": row.level}
            if row.user_id
            else {"group": row.group.name, "level": row.level}
            for row in rows
        ),
        key=lambda g: (g.get("user", ""), g.get("group", "")),
    )


def build_grants(permission_model, owner_field: str, owner, grants: list[dict[str, str]]) -> list:
    """Validated, unsaved permission rows for `grants` ([{user|group, level}])."""
    rows = []
    User = get_user_model()
    for grant in grants:
        level = grant.get("level")
        if level not in access.LEVELS:
            raise InvalidParameterValue(
                f"Invalid level {level!r}; allowed: {', '.join(access.LEVELS)}."
            )
        if bool(grant.get("user")) == bool(grant.get("group")):
            raise InvalidParameterValue("Each grant names exactly one of 'user' or 'group'.")
        if grant.get("user"):
            user = User.objects.filter(username=grant["user"]).first()
            if user is None:
                raise InvalidParameterValue(f"No user named {grant['user']!r}.")
            rows.append(permission_model(**{owner_field: owner}, user=user, level=level))
        else:
            group = Group.objects.filter(name=grant["group"]).first()
            if group is None:
                raise InvalidParameterValue(f"No role or group named {grant['group']!r}.")
            rows.append(permission_model(**{owner_field: owner}, group=group, level=level))
    keys = [(r.user_id, r.group_id) for r in rows]
    if len(keys) != len(set(keys)):
        raise InvalidParameterValue("A user or group appears twice in the grants.")
    return rows


def hidden_ids(user, permission_model, owner_field: str, all_ids_qs, default: str) -> set | None:
    """Ids of objects this user may not read, or None when nothing is hidden."""
    if access.is_admin(user) or access.is_compliance(user):
        return None
    group_ids = access.group_ids(user)
    by_owner: dict[Any, list] = {}
    for row in permission_model.objects.filter(
        models.Q(user_id=user.pk) | models.Q(group_id__in=group_ids)
    ).values_list(f"{owner_field}_id", "user_id", "group_id", "level"):
        by_owner.setdefault(row[0], []).append(row[1:])

    def readable(rows) -> bool:
        level = access.effective_level(user, rows, default)
        return access.RANK[level] >= access.RANK[access.READ]

    if access.RANK[default] >= access.RANK[access.READ]:
        return {owner for owner, rows in by_owner.items() if not readable(rows)}
    allowed = {owner for owner, rows in by_owner.items() if readable(rows)}
    return set(all_ids_qs.exclude(pk__in=allowed).values_list("pk", flat=True))


def grant_put_one(permission_model, owner_field: str, owner, grant: dict[str, str]) -> str:
    """Gives one user or group `grant["level"]` on `owner`, replacing the level they had
    there (others' grants stay). Answers "added" or "changed" (or "unchanged")."""
    (row,) = build_grants(permission_model, owner_field, owner, [grant])
    principal = {"user": row.user} if row.user_id else {"group": row.group}
    existing = permission_model.objects.filter(**{owner_field: owner}, **principal).first()
    if existing is None:
        row.save()
        return "added"
    if existing.level == row.level:
        return "unchanged"
    existing.level = row.level
    existing.save(update_fields=["level"])
    return "changed"


def grant_remove_one(permission_model, owner_field: str, owner, *, user: str, group: str) -> None:
    """Removes the grant of one user or group on `owner`; a 400 names what has none."""
    if bool(user) == bool(group):
        raise InvalidParameterValue("Name exactly one of 'user' or 'group' to remove.")
    rows = permission_model.objects.filter(**{owner_field: owner})
    rows = rows.filter(user__username=user) if user else rows.filter(group__name=group)
    if not rows.delete()[0]:
        who = f"user {user!r}" if user else f"group {group!r}"
        raise InvalidParameterValue(f"{who[0].upper()}{who[1:]} has no grant here to remove.")

"""Who manages a webhook: a per-model webhook, whoever may manage its model; a registry-wide
one, administrators. Others see no such webhook (404), so ids leak nothing."""

from __future__ import annotations

from typing import Any

from core import access, identifiers
from core.errors import PermissionDenied, ResourceDoesNotExist
from registry import permissions as model_permissions
from webhooks.models import Webhook


def not_found(webhook_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Webhook with ID {webhook_id} not found.")


def may_manage(user, webhook: Webhook) -> bool:
    if access.is_admin(user):
        return True
    if webhook.model_id is None:
        return False
    level = model_permissions.model_level(user, webhook.model_id)
    return access.RANK[level] >= access.RANK[access.MANAGE]


def resolve_webhook(user, required: str, target: Any) -> Webhook:
    given = identifiers.webhook_id(access.target_value(target, "webhook_id"))
    webhook = Webhook.objects.select_related("model").filter(webhook_id=given).first()
    if webhook is None:
        raise not_found(given)
    if not may_manage(user, webhook):
        if (
            webhook.model_id is not None
            and access.RANK[model_permissions.model_level(user, webhook.model_id)]
            >= access.RANK[access.READ]
        ):
            raise PermissionDenied(
                f"Permission denied: webhooks of registered model '{webhook.model.name}' are "
                "managed by those with MANAGE on the model."
            )
        raise not_found(given)
    access.set_target_value(target, "webhook_id", webhook.webhook_id)
    return webhook


def check_create(user, model) -> None:
    """A registry-wide webhook is for administrators; a per-model one needs MANAGE on the
    model (the caller resolved `model` through core.access already)."""
    if model is None and not access.is_admin(user):
        raise PermissionDenied(
            "Only administrators create registry-wide webhooks; give a registered model "
            "('model') to create a webhook for a model you manage."
        )

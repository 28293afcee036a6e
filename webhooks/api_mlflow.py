"""MLflow's webhooks API (`WebhookService`, /api/2.0/mlflow/webhooks): the unmodified
client's create/list/get/update/delete/test. MLflow's webhooks are registry-wide, so these
routes are for administrators; per-model webhooks are managed through /api/v1/webhooks."""

from __future__ import annotations

from typing import Any

from core import access, identifiers
from core.errors import InvalidParameterValue
from core.mlflow_api import MlflowRequest, mlflow_route
from core.pagination import decode_page_token, encode_page_token, validate_max_results
from webhooks import events as event_catalog
from webhooks import permissions, selectors, services
from webhooks.models import Webhook

MAX_LIST = 1000


def _event(message: Any) -> str:
    """A `WebhookEvent` message ({"entity": "MODEL_VERSION", "action": "CREATED"})."""
    if not isinstance(message, dict):
        raise InvalidParameterValue("Each webhook event must be an object {entity, action}.")
    entity, action = message.get("entity"), message.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise InvalidParameterValue(
            "Each webhook event needs an 'entity' and an 'action' (e.g. MODEL_VERSION, CREATED)."
        )
    event = f"{entity.lower()}.{action.lower()}"
    if event not in event_catalog.MLFLOW_EVENTS:
        allowed = ", ".join(event_catalog.MLFLOW_EVENTS)
        raise InvalidParameterValue(
            f"Invalid webhook event {entity}.{action}: Custody supports MLflow's registry "
            f"events {allowed} (Custody's own events are subscribed through /api/v1/webhooks)."
        )
    return event


def _events(req: MlflowRequest) -> list[str]:
    return [_event(m) for m in req.messages("events")]


_STATUSES = {"ACTIVE": "ACTIVE", "DISABLED": "DISABLED", "0": "ACTIVE", "1": "DISABLED"}


def _webhook(req: MlflowRequest) -> Webhook:
    given = identifiers.webhook_id(req.kwargs.get("webhook_id"))
    webhook = Webhook.objects.select_related("model").filter(webhook_id=given).first()
    if webhook is None:
        raise permissions.not_found(given)
    return webhook


@mlflow_route("webhooks", "POST", access=access.ADMIN)
def create_webhook(req: MlflowRequest) -> dict:
    if not req.has("events"):
        raise InvalidParameterValue("Missing value for required parameter 'events'.")
    webhook, _ = services.webhook_create(
        user=req.http.user,
        name=req.str("name", required=True),
        url=req.str("url", required=True),
        events=_events(req),
        description=req.str("description") or "",
        secret=req.str("secret"),
        status=req.enum("status", _STATUSES, default="ACTIVE"),
    )
    return {"webhook": selectors.mlflow_webhook_payload(webhook)}


@mlflow_route("webhooks", "GET", access=access.ADMIN)
def list_webhooks(req: MlflowRequest) -> dict:
    limit = validate_max_results(req.int64("max_results"), default=100, maximum=MAX_LIST)
    scope = {"route": "webhooks"}
    offset = decode_page_token(req.str("page_token"), scope)
    rows = list(selectors.managed_webhooks(req.http.user)[offset : offset + limit + 1])
    shown = [w for w in rows[:limit] if any(e in event_catalog.MLFLOW_EVENTS for e in w.events)]
    body: dict[str, Any] = {"webhooks": [selectors.mlflow_webhook_payload(w) for w in shown]}
    if len(rows) > limit:
        body["next_page_token"] = encode_page_token(offset + limit, scope)
    return body


@mlflow_route("webhooks/<str:webhook_id>", "GET", access=access.ADMIN)
def get_webhook(req: MlflowRequest) -> dict:
    return {"webhook": selectors.mlflow_webhook_payload(_webhook(req))}


@mlflow_route("webhooks/<str:webhook_id>", "PATCH", access=access.ADMIN)
def update_webhook(req: MlflowRequest) -> dict:
    webhook = _webhook(req)
    changes: dict[str, Any] = {}
    for name in ("name", "description", "url", "secret"):
        if req.has(name):
            changes[name] = req.str(name)
    if req.has("events"):
        # Custody's own events the webhook also has are kept: MLflow's client cannot see them.
        kept = [e for e in webhook.events if e not in event_catalog.MLFLOW_EVENTS]
        changes["events"] = _events(req) + kept
    if req.has("status"):
        changes["status"] = req.enum("status", _STATUSES, default="ACTIVE")
    webhook = services.webhook_update(webhook=webhook, changes=changes)
    return {"webhook": selectors.mlflow_webhook_payload(webhook)}


@mlflow_route("webhooks/<str:webhook_id>", "DELETE", access=access.ADMIN)
def delete_webhook(req: MlflowRequest) -> dict:
    services.webhook_delete(webhook=_webhook(req))
    return {}


@mlflow_route("webhooks/<str:webhook_id>/test", "POST", access=access.ADMIN)
def test_webhook(req: MlflowRequest) -> dict:
    webhook = _webhook(req)
    event = None
    if req.data.get("event") is not None:
        event = _event(req.data["event"])
    result = services.webhook_test(webhook=webhook, event=event)
    body: dict[str, Any] = {"success": result.ok}
    if result.status is not None:
        body["response_status"] = result.status
        body["response_body"] = result.body[:1000]
    if result.error:
        body["error_message"] = result.error
    return {"result": body}

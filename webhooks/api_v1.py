"""/api/v1 webhooks: per-model and registry-wide webhooks with Custody's events, the
delivery log, replays, tests, and each person's notification preferences. Thin: validate,
call a service or selector, shape the answer."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access, identifiers
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.pagination import OFFSET_HELP, limit_and_offset, limit_help
from webhooks import events as event_catalog
from webhooks import notifications, permissions, selectors, services
from webhooks.models import Webhook, WebhookDelivery

MAX_PAGE = 200
LIMIT_HELP = limit_help(MAX_PAGE)


def _webhook(webhook_id: str) -> Webhook:
    # The access decision resolved it (and wrote the canonical id back into the kwargs).
    webhook = Webhook.objects.select_related("model", "owner").filter(webhook_id=webhook_id).first()
    if webhook is None:
        raise permissions.not_found(webhook_id)
    return webhook


class WebhookInput(serializers.Serializer):
    name = serializers.CharField(max_length=256)
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(event_catalog.ALL_EVENTS)), allow_empty=False
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    model = serializers.CharField(
        required=False, max_length=500, help_text="a registered model: a per-model webhook"
    )
    secret = serializers.CharField(
        required=False,
        max_length=1000,
        help_text="signing secret; generated (and answered this once) when left out",
    )
    status = serializers.ChoiceField(choices=Webhook.Status.values, required=False)
    format = serializers.ChoiceField(choices=Webhook.Format.values, required=False)


class WebhookUpdate(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=256)
    url = serializers.CharField(required=False, max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(event_catalog.ALL_EVENTS)),
        allow_empty=False,
        required=False,
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    secret = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    status = serializers.ChoiceField(choices=Webhook.Status.values, required=False)


class WebhooksApi(APIView):
    access_rule = access.AUTHENTICATED  # and MANAGE on the model, or admin, checked below

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description=LIMIT_HELP),
            OpenApiParameter("offset", int, description=OFFSET_HELP),
        ],
        responses=OpenApiTypes.OBJECT,
        operation_id="webhooks_list",
        summary="Webhooks the caller manages",
    )
    def get(self, request):
        limit, offset = limit_and_offset(request.query_params, max_limit=MAX_PAGE)
        rows = list(selectors.managed_webhooks(request.user)[offset : offset + limit + 1])
        return Response(
            {
                "webhooks": [selectors.webhook_payload(w) for w in rows[:limit]],
                "next_offset": offset + limit if len(rows) > limit else None,
            }
        )

    @extend_schema(
        request=WebhookInput,
        responses={201: OpenApiTypes.OBJECT},
        summary="Create a webhook (per-model: MANAGE on the model; registry-wide: admins)",
        description=(
            "Events: MLflow's ("
            + ", ".join(event_catalog.MLFLOW_EVENTS)
            + ") and Custody's ("
            + ", ".join(event_catalog.CUSTODY_MODEL_EVENTS + event_catalog.CUSTODY_REGISTRY_EVENTS)
            + "; the audit_* ones registry-wide only). The answer carries `secret` this once."
        ),
    )
    def post(self, request):
        data = WebhookInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        model = None
        if values.get("model"):
            model = access.authorize(
                request._request, access.MODEL_MANAGE, {"name": values["model"]}
            )
        permissions.check_create(request.user, model)
        webhook, secret = services.webhook_create(
            user=request.user,
            name=values["name"],
            url=values["url"],
            events=values["events"],
            description=values.get("description", ""),
            secret=values.get("secret"),
            status=values.get("status", Webhook.Status.ACTIVE),
            model=model,
            format=values.get("format", Webhook.Format.MLFLOW),
            generate_secret=True,
        )
        body = selectors.webhook_payload(webhook)
        body["secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookApi(APIView):
    access_rule = access.WEBHOOK_MANAGE

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One webhook (never its secret)")
    def get(self, request, webhook_id: str):
        return Response(selectors.webhook_payload(_webhook(webhook_id)))

    @extend_schema(
        request=WebhookUpdate,
        responses=OpenApiTypes.OBJECT,
        summary="Change a webhook; status ACTIVE re-enables a disabled one",
    )
    def patch(self, request, webhook_id: str):
        data = WebhookUpdate(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_update(
            webhook=_webhook(webhook_id), changes=dict(data.validated_data)
        )
        return Response(selectors.webhook_payload(webhook))

    @extend_schema(responses={204: None}, summary="Delete a webhook and its delivery log")
    def delete(self, request, webhook_id: str):
        services.webhook_delete(webhook=_webhook(webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(APIView):
    access_rule = access.WEBHOOK_MANAGE

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        summary='Send an example event now ({"event": ...}; default: the first subscribed)',
    )
    def post(self, request, webhook_id: str):
        webhook = _webhook(webhook_id)
        event = request.data.get("event") if isinstance(request.data, dict) else None
        if event is not None and event not in webhook.events:
            raise InvalidParameterValue(
                f"Event {str(event)[:80]!r} is not one this webhook subscribes to: "
                f"{', '.join(webhook.events)}."
            )
        result = services.webhook_test(webhook=webhook, event=event)
        return Response(
            {
                "success": result.ok,
                "response_status": result.status,
                "latency_ms": result.latency_ms,
                "error_message": result.error,
            }
        )


class WebhookDeliveriesApi(APIView):
    access_rule = access.WEBHOOK_MANAGE

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=WebhookDelivery.Status.values),
            OpenApiParameter("limit", int, description=LIMIT_HELP),
            OpenApiParameter("offset", int, description=OFFSET_HELP),
        ],
        responses=OpenApiTypes.OBJECT,
        summary="The delivery log: status, attempts, response code, latency (newest first)",
    )
    def get(self, request, webhook_id: str):
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in WebhookDelivery.Status.values:
            raise InvalidParameterValue(
                f"Invalid status {wanted[:40]!r}. Allowed: "
                f"{', '.join(WebhookDelivery.Status.values)}."
            )
        limit, offset = limit_and_offset(request.query_params, max_limit=MAX_PAGE)
        rows = list(
            selectors.deliveries(_webhook(webhook_id), status=wanted)[offset : offset + limit + 1]
        )
        return Response(
            {
                "deliveries": [selectors.delivery_payload(d) for d in rows[:limit]],
                "next_offset": offset + limit if len(rows) > limit else None,
            }
        )


class WebhookDeliveryReplayApi(APIView):
    access_rule = access.WEBHOOK_MANAGE

    @extend_schema(
        request=None,
        responses={202: OpenApiTypes.OBJECT},
        summary="Send a failed delivery again (same delivery id)",
    )
    def post(self, request, webhook_id: str, delivery_id: str):
        webhook = _webhook(webhook_id)
        given = identifiers.delivery_id(delivery_id)
        delivery = WebhookDelivery.objects.filter(webhook=webhook, delivery_id=given).first()
        if delivery is None:
            raise ResourceDoesNotExist(f"Delivery {given} of webhook {webhook_id} not found.")
        delivery = services.delivery_replay(delivery=delivery)
        return Response(selectors.delivery_payload(delivery), status=status.HTTP_202_ACCEPTED)


class PreferencesInput(serializers.Serializer):
    review_requests = serializers.BooleanField(required=False)
    decisions = serializers.BooleanField(required=False)
    webhook_disabled = serializers.BooleanField(required=False)


def _preferences(prefs) -> dict:
    return {
        "review_requests": prefs.review_requests,
        "decisions": prefs.decisions,
        "webhook_disabled": prefs.webhook_disabled,
    }


class NotificationPreferencesApi(APIView):
    access_rule = access.AUTHENTICATED  # the caller's own

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Which emails the caller gets")
    def get(self, request):
        return Response(_preferences(notifications.preferences_of(request.user)))

    @extend_schema(
        request=PreferencesInput,
        responses=OpenApiTypes.OBJECT,
        summary="Turn emails on or off (fields left out keep their value)",
    )
    def put(self, request):
        data = PreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        prefs = notifications.preferences_update(
            user=request.user, changes=dict(data.validated_data)
        )
        return Response(_preferences(prefs))

from django.urls import path

from webhooks import api_v1

urlpatterns = [
    path("webhooks", api_v1.WebhooksApi.as_view(), name="v1-webhooks"),
    path("webhooks/<str:webhook_id>", api_v1.WebhookApi.as_view(), name="v1-webhook"),
    path("webhooks/<str:webhook_id>/test", api_v1.WebhookTestApi.as_view(), name="v1-webhook-test"),
    path(
        "webhooks/<str:webhook_id>/deliveries",
        api_v1.WebhookDeliveriesApi.as_view(),
        name="v1-webhook-deliveries",
    ),
    path(
        "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/replay",
        api_v1.WebhookDeliveryReplayApi.as_view(),
        name="v1-webhook-delivery-replay",
    ),
    path(
        "me/notifications",
        api_v1.NotificationPreferencesApi.as_view(),
        name="v1-notification-preferences",
    ),
]

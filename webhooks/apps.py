from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and notifications"

    def ready(self) -> None:
        from audit import services as audit_services
        from core import access
        from webhooks import permissions, subscriber

        access.register_resolver("webhook", permissions.resolve_webhook)
        audit_services.after_record_subscribers.append(subscriber.on_audit_event)
        audit_services.notice_subscribers.append(subscriber.on_audit_notice)

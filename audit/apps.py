from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit.services import record_denial
        from core import access
        from core.errors import PermissionDenied

        def audit_readers_only(user, required, target) -> None:
            # Admins were admitted before resolvers run; compliance officers read the trail.
            if not access.is_compliance(user):
                raise PermissionDenied(
                    "Only compliance officers and administrators read the audit trail."
                )

        access.register_resolver("audit", audit_readers_only)
        access.on_write_denied(record_denial)

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit.services import record
        from core import access, refusals
        from core.errors import PermissionDenied

        def audit_readers_only(user, required, target) -> None:
            # Admins were admitted before resolvers run; compliance officers read the trail.
            if not access.is_compliance(user):
                raise PermissionDenied(
                    "Only compliance officers and administrators read the audit trail."
                )

        access.register_resolver("audit", audit_readers_only)
        refusals.set_recorder(lambda refusal: record(**refusal))

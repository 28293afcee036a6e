from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from core import observability
        from governance import metrics
        from governance.services import policy as policy_services
        from governance.services import requests as request_services
        from registry import hooks

        observability.register_collector(metrics.collect)

        hooks.register(
            archive_grace=policy_services.archive_grace_of,
            registration=policy_services.check_registration,
            alias=policy_services.check_alias,
            stage_change=request_services.on_stage_change,
        )

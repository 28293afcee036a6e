from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from core import observability
        from governance import metrics, services
        from registry import hooks

        observability.register_collector(metrics.collect)

        hooks.register(
            archive_grace=services.archive_grace_of,
            registration=services.check_registration,
            alias=services.check_alias,
            stage_change=services.on_stage_change,
        )

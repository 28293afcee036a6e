from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import services
        from registry import hooks

        hooks.register(
            archive_grace=services.archive_grace_of,
            registration=services.check_registration,
            alias=services.check_alias,
            stage_change=services.on_stage_change,
        )

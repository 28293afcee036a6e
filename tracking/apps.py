from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Experiment tracking"

    def ready(self) -> None:
        from core import readiness
        from tracking import permissions
        from tracking.artifacts import check_writable

        permissions.register()
        readiness.register_check("artifact_store", check_writable)

from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Experiment tracking"

    def ready(self) -> None:
        from core import readiness
        from core.storage import check_writable
        from tracking import permissions

        permissions.register()
        readiness.register_check("artifact_store", check_writable)

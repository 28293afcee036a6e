from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Experiment tracking"

    def ready(self) -> None:
        from tracking import permissions

        permissions.register()

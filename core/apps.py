from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Custody core"

    def ready(self) -> None:
        from core import task_context

        task_context.connect()

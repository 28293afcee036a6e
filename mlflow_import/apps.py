from django.apps import AppConfig


class MlflowImportConfig(AppConfig):
    name = "mlflow_import"
    verbose_name = "MLflow import"
    default_auto_field = "django.db.models.BigAutoField"

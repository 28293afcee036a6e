from django.contrib import admin
from django.urls import include, path

from core import mlflow_api
from core.views import health, version

# Importing the handler modules registers their MLflow routes.
import tracking.api_mlflow  # noqa: E402,F401  isort: skip
import tracking.api_artifacts  # noqa: E402,F401  isort: skip

urlpatterns = [
    path("health", health),
    path("version", version),
    path("admin/", admin.site.urls),
    *mlflow_api.urlpatterns(),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"

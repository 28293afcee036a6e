from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import mlflow_api
from core.observability import metrics
from core.readiness import ready
from core.views import health, version

# Importing the handler modules registers their MLflow routes.
import tracking.api_mlflow  # noqa: E402,F401  isort: skip
import tracking.api_artifacts  # noqa: E402,F401  isort: skip
import registry.api_mlflow  # noqa: E402,F401  isort: skip
import governance.api_mlflow  # noqa: E402,F401  isort: skip
import core.mlflow_unsupported  # noqa: E402,F401  isort: skip
import webhooks.api_mlflow  # noqa: E402,F401  isort: skip

urlpatterns = [
    path("health", health),
    # First what serving layers and training jobs poll and log to (`/api/v1/resolve`, the
    # MLflow routes): every pattern before a route is one more match tried per request.
    path("api/v1/", include("registry.urls_v1")),
    *mlflow_api.urlpatterns(),
    path("ready", ready),
    path("metrics", metrics),
    path("version", version),
    path("admin/", admin.site.urls),
    path("api/v1/schema", SpectacularAPIView.as_view(), name="v1-schema"),
    # Our template: Swagger UI's start-up script as a static file, allowed by the CSP.
    path(
        "api/v1/docs",
        SpectacularSwaggerView.as_view(url_name="v1-schema", template_name="web/api_docs.html"),
        name="v1-docs",
    ),
    path("api/v1/", include("accounts.urls_v1")),
    path("api/v1/", include("tracking.urls_v1")),
    path("api/v1/", include("audit.urls_v1")),
    path("api/v1/", include("governance.urls_v1")),
    path("api/v1/", include("lineage.urls_v1")),
    path("api/v1/", include("webhooks.urls_v1")),
    path("", include("web.urls")),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
handler403 = "core.views.forbidden"

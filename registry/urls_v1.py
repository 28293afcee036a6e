from django.urls import path

from registry import api_v1

urlpatterns = [
    path("resolve", api_v1.ResolveApi.as_view(), name="v1-resolve"),
    path("deployments", api_v1.DeploymentsApi.as_view(), name="v1-deployments"),
    path(
        "models/<str:name>/permissions",
        api_v1.ModelPermissionsApi.as_view(),
        name="v1-model-permissions",
    ),
]

from django.urls import path

from tracking import api_v1

urlpatterns = [
    path(
        "experiments/<str:experiment_id>/permissions",
        api_v1.ExperimentPermissionsApi.as_view(),
        name="v1-experiment-permissions",
    ),
]

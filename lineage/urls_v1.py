from django.urls import path

from lineage import api_v1

urlpatterns = [
    path("lineage", api_v1.LineageApi.as_view(), name="v1-lineage"),
    path("lineage/impact", api_v1.ImpactApi.as_view(), name="v1-lineage-impact"),
    path("lineage/links", api_v1.LinksApi.as_view(), name="v1-lineage-links"),
    path("lineage/links/<int:link_id>", api_v1.LinkApi.as_view(), name="v1-lineage-link"),
    path(
        "models/<str:name>/versions/<str:a>/diff/<str:b>",
        api_v1.VersionDiffApi.as_view(),
        name="v1-version-diff",
    ),
]

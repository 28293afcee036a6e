from django.urls import path

from governance import api_v1

urlpatterns = [
    path("models/<str:name>/policy", api_v1.PolicyApi.as_view(), name="v1-model-policy"),
    path("models/<str:name>/timeline", api_v1.TimelineApi.as_view(), name="v1-model-timeline"),
    path(
        "models/<str:name>/versions/<str:version>/card",
        api_v1.ModelCardApi.as_view(),
        name="v1-model-card",
    ),
    path(
        "models/<str:name>/versions/<str:version>/card.md",
        api_v1.ModelCardMarkdownApi.as_view(),
        name="v1-model-card-markdown",
    ),
    path(
        "models/<str:name>/versions/<str:version>/reviews",
        api_v1.ReviewChainApi.as_view(),
        name="v1-review-chain",
    ),
    path("audit/exports", api_v1.AuditExportsApi.as_view(), name="v1-audit-exports"),
    path(
        "audit/exports/<int:export_id>",
        api_v1.AuditExportApi.as_view(),
        name="v1-audit-export",
    ),
    path(
        "audit/exports/<int:export_id>/download",
        api_v1.AuditExportDownloadApi.as_view(),
        name="v1-audit-export-download",
    ),
    path("transition-requests", api_v1.TransitionRequestsApi.as_view(), name="v1-requests"),
    path(
        "transition-requests/<int:request_id>",
        api_v1.TransitionRequestApi.as_view(),
        name="v1-request",
    ),
    path(
        "transition-requests/<int:request_id>/approve",
        api_v1.ApproveApi.as_view(),
        name="v1-request-approve",
    ),
    path(
        "transition-requests/<int:request_id>/reject",
        api_v1.RejectApi.as_view(),
        name="v1-request-reject",
    ),
    path(
        "transition-requests/<int:request_id>/cancel",
        api_v1.CancelApi.as_view(),
        name="v1-request-cancel",
    ),
    path(
        "transition-requests/<int:request_id>/comments",
        api_v1.RequestCommentsApi.as_view(),
        name="v1-request-comments",
    ),
    path(
        "transition-requests/<int:request_id>/review",
        api_v1.ReviewScreenApi.as_view(),
        name="v1-request-review",
    ),
]

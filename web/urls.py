from django.urls import path

from web import (
    views_access,
    views_account,
    views_audit,
    views_governance,
    views_lineage,
    views_logged_models,
    views_registry,
    views_tracking,
)

app_name = "web"

urlpatterns = [
    path("", views_tracking.home, name="home"),
    path("login/", views_account.login, name="login"),
    path("logout/", views_account.logout, name="logout"),
    path("tokens/", views_account.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", views_account.token_revoke, name="token-revoke"),
    path("experiments/", views_tracking.experiment_list, name="experiments"),
    path("experiments/<str:experiment_id>/", views_tracking.experiment_detail, name="experiment"),
    path(
        "experiments/<str:experiment_id>/charts/",
        views_tracking.experiment_charts,
        name="experiment-charts",
    ),
    path(
        "experiments/<str:experiment_id>/columns",
        views_tracking.experiment_columns,
        name="experiment-columns",
    ),
    path("runs/<str:run_id>/", views_tracking.run_detail, name="run"),
    path("runs/<str:run_id>/edit", views_tracking.run_edit, name="run-edit"),
    path("runs/<str:run_id>/lifecycle", views_tracking.run_lifecycle, name="run-lifecycle"),
    path(
        "runs/<str:run_id>/artifact-image",
        views_tracking.run_artifact_image,
        name="run-artifact-image",
    ),
    path("compare/", views_tracking.compare, name="compare"),
    path(
        "logged-models/<str:model_id>/",
        views_logged_models.logged_model_detail,
        name="logged-model",
    ),
    path("models/", views_registry.model_list, name="models"),
    path("models/<str:name>/", views_registry.model_detail, name="model"),
    path("models/<str:name>/aliases", views_registry.alias_change, name="alias-change"),
    path(
        "models/<str:name>/versions/<str:version>/",
        views_registry.version_detail,
        name="version",
    ),
    path("audit/", views_audit.audit_page, name="audit"),
    path("audit/events/<int:seq>/", views_audit.audit_event, name="audit-event"),
    path("access/", views_access.access_index, name="access"),
    path("models/<str:name>/access/", views_access.model_access, name="model-access"),
    path(
        "experiments/<str:experiment_id>/access/",
        views_access.experiment_access,
        name="experiment-access",
    ),
    path("lineage/", views_lineage.lineage_page, name="lineage"),
    path(
        "models/<str:name>/versions/<str:a>/diff/<str:b>/",
        views_registry.version_diff,
        name="version-diff",
    ),
    path(
        "models/<str:name>/versions/<str:version>/diff/",
        views_registry.version_diff_pick,
        name="version-diff-pick",
    ),
    path("reviews/", views_governance.queue, name="reviews"),
    path("reviews/<int:request_id>/", views_governance.review, name="review"),
    path("reviews/<int:request_id>/act", views_governance.review_act, name="review-act"),
    path(
        "models/<str:name>/versions/<str:version>/card/",
        views_governance.card,
        name="card",
    ),
    path(
        "models/<str:name>/versions/<str:version>/request",
        views_governance.request_promotion,
        name="request-promotion",
    ),
]

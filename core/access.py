"""The central access decision. Every route declares one of these rules; `authorize` is the
only function that decides whether a request may proceed.

The rules name what the request touches and how (read, edit, manage). Identity and
per-object permissions plug in here (the identity-and-access issue); until then every
declared rule requires an authenticated caller (except PUBLIC) and an undeclared rule is a
programming error."""

from __future__ import annotations

from django.http import HttpRequest

from core.errors import PermissionDenied, Unauthenticated

PUBLIC = "public"
AUTHENTICATED = "authenticated"
EXPERIMENT_READ = "experiment.read"
EXPERIMENT_EDIT = "experiment.edit"
EXPERIMENT_MANAGE = "experiment.manage"
EXPERIMENT_CREATE = "experiment.create"
RUN_READ = "run.read"
RUN_EDIT = "run.edit"
RUN_MANAGE = "run.manage"
ARTIFACT_READ = "artifact.read"
ARTIFACT_EDIT = "artifact.edit"
ARTIFACT_MANAGE = "artifact.manage"
MODEL_READ = "model.read"
MODEL_EDIT = "model.edit"
MODEL_MANAGE = "model.manage"
MODEL_CREATE = "model.create"

RULES = frozenset(
    {
        PUBLIC,
        AUTHENTICATED,
        EXPERIMENT_READ,
        EXPERIMENT_EDIT,
        EXPERIMENT_MANAGE,
        EXPERIMENT_CREATE,
        RUN_READ,
        RUN_EDIT,
        RUN_MANAGE,
        ARTIFACT_READ,
        ARTIFACT_EDIT,
        ARTIFACT_MANAGE,
        MODEL_READ,
        MODEL_EDIT,
        MODEL_MANAGE,
        MODEL_CREATE,
    }
)


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def authorize(request: HttpRequest, rule: str) -> None:
    if rule not in RULES:
        raise RuntimeError(f"Route declares unknown access rule {rule!r}")
    if rule == PUBLIC:
        return
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise Unauthenticated(
            "Authentication required: send HTTP Basic credentials (MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD) or a bearer token (MLFLOW_TRACKING_TOKEN)."
        )
    if getattr(request, "custody_auth_method", None) == "session" and request.method in _UNSAFE:
        _check_csrf(request)


def _check_csrf(request: HttpRequest) -> None:
    # The MLflow routes are CSRF-exempt for header-authenticated clients; a browser session
    # writing through them must still prove the request came from our own pages.
    from django.middleware.csrf import CsrfViewMiddleware

    failure = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if failure is not None:
        raise PermissionDenied("CSRF verification failed: session requests need a CSRF token.")

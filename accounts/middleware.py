from __future__ import annotations

from django.http import JsonResponse

from accounts.authentication import authenticate_header
from accounts.throttle import TooManyAttempts
from core.context import update_context
from core.errors import ApplicationError, mlflow_error_body

# Besides /api/ and /ajax-api/, the MLflow client calls a few root paths of feature families
# Custody does not serve (core/mlflow_unsupported.py); its credentials count there too, so
# that it gets the 501 naming the family rather than a 401.
API_PREFIXES = ("/api/", "/ajax-api/", "/v1/traces", "/graphql", "/gateway/")


class ApiAuthenticationMiddleware:
    """Authenticates API requests that carry an Authorization header; sessions (UI, admin)
    are left to Django's own middleware. Records who is asking for the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.custody_auth_method = None
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header and request.path.startswith(API_PREFIXES):
            try:
                result = authenticate_header(header, request.META.get("REMOTE_ADDR", ""))
            except ApplicationError as exc:
                response = JsonResponse(
                    mlflow_error_body(exc.error_code, exc.message), status=exc.status
                )
                if exc.status == 401:
                    response["WWW-Authenticate"] = 'Basic realm="custody"'
                if isinstance(exc, TooManyAttempts):
                    response["Retry-After"] = str(exc.retry_after)
                return response
            request.user = result.user
            request.custody_auth_method = result.method
            request.custody_token = result.token
            # CSRF protects cookies; a request that proves itself with a header has none to
            # ride on, so it needs no CSRF token (sessions still do).
            request._dont_enforce_csrf_checks = True
            update_context(
                user_id=result.user.pk,
                username=result.user.get_username(),
                auth_method=result.method,
                token_id=result.token.pk if result.token else None,
            )
        elif request.user.is_authenticated:
            request.custody_auth_method = "session"
            update_context(
                user_id=request.user.pk,
                username=request.user.get_username(),
                auth_method="session",
            )
        return self.get_response(request)

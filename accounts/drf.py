from __future__ import annotations

from rest_framework.authentication import BaseAuthentication


class HeaderAuthentication(BaseAuthentication):
    """Hands DRF the user that ApiAuthenticationMiddleware authenticated from the
    Authorization header; without a header DRF falls back to sessions, which enforce CSRF."""

    def authenticate(self, request):
        django_request = request._request
        if getattr(django_request, "custody_auth_method", None) in ("basic", "token"):
            return django_request.user, getattr(django_request, "custody_token", None)
        return None

    def authenticate_header(self, request) -> str:
        return 'Basic realm="custody"'

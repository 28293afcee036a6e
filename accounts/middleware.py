from __future__ import annotations

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware

from accounts.authentication import authenticate_header
from accounts.throttle import TooManyAttempts
from core import refusals
from core.context import update_context
from core.errors import (
    MLFLOW_PATH_PREFIXES,
    ApplicationError,
    PermissionDenied,
    response_for_path,
)

# /api/ and the MLflow client's paths, among them a few root paths of feature families Custody
# does not serve (core/mlflow_unsupported.py): its credentials count there too, so that it
# gets the 501 naming the family rather than a 401.
API_PREFIXES = ("/api/", *MLFLOW_PATH_PREFIXES)


def proves_itself_with_a_header(request) -> bool:
    """An API request with an Authorization header: ApiAuthenticationMiddleware authenticates
    it from that header (or refuses it) and never from a cookie."""
    return bool(request.META.get("HTTP_AUTHORIZATION")) and request.path.startswith(API_PREFIXES)


class _ForCookieSessions:
    """Runs the middleware it is mixed into only for requests that may use a cookie session.
    A request that proves itself with a header reads no session and gets no messages;
    setting them up and saving them cost every API call a share of a cheap request's time.
    Django's CsrfViewMiddleware stays as it is (`check --deploy` looks for it by name): it
    accepts these requests, which ApiAuthenticationMiddleware marks
    `_dont_enforce_csrf_checks` once it has refused writes from another site's page."""

    def __call__(self, request):
        if proves_itself_with_a_header(request):
            return self.get_response(request)
        return super().__call__(request)


class CookieSessionMiddleware(_ForCookieSessions, SessionMiddleware):
    pass


class CookieAuthenticationMiddleware(AuthenticationMiddleware):
    def __call__(self, request):
        if proves_itself_with_a_header(request):
            # What reads request.user before the header is checked (or after it is refused)
            # reads an anonymous user, never a session nobody loaded.
            request.user = AnonymousUser()
            return self.get_response(request)
        return super().__call__(request)


class CookieMessageMiddleware(_ForCookieSessions, MessageMiddleware):
    pass


# Methods a page on another site can make a browser send without the server's consent (a
# preflight): unsafe ones among them are refused below when they come from another site.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CROSS_SITE_WRITE = (
    "A browser sent this write from a page on another site ({origin}), with the credentials "
    "it remembers for Custody: refused, as a cookie session's would be without its CSRF "
    "token. Send writes from a script or the MLflow client (which send no Origin or "
    "Sec-Fetch-Site header), or from Custody's own pages."
)


def _sent_from_another_site(request) -> str | None:
    """Where a browser says a write comes from, when that is not Custody's own origin.

    A browser remembers the HTTP Basic credentials typed in answer to Custody's challenge and
    attaches them to every later request to Custody, from any page, as it does cookies: a
    form on another site could otherwise approve a transition in a reviewer's name. Browsers
    name the page's origin (`Origin`, on every cross-origin POST, "null" from sandboxed or
    privacy-stripped pages) and its relation to the target (`Sec-Fetch-Site`); scripts and the
    MLflow client send neither. CSRF_TRUSTED_ORIGINS are trusted here too."""
    if request.method in _SAFE_METHODS:
        return None
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None:
        own = f"{request.scheme}://{request.get_host()}"
        if origin == own or origin in settings.CSRF_TRUSTED_ORIGINS:
            return None
        return origin
    site = request.META.get("HTTP_SEC_FETCH_SITE")
    return f"Sec-Fetch-Site: {site}" if site in ("cross-site", "same-site") else None


class ApiAuthenticationMiddleware:
    """Authenticates API requests that carry an Authorization header; sessions (UI, admin)
    are left to Django's own middleware. Records who is asking for the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.custody_auth_method = None
        if proves_itself_with_a_header(request):
            try:
                result = authenticate_header(
                    request.META["HTTP_AUTHORIZATION"], request.META.get("REMOTE_ADDR", "")
                )
            except ApplicationError as exc:
                response = response_for_path(request.path, exc)
                if exc.status == 401:
                    response["WWW-Authenticate"] = 'Basic realm="custody"'
                if isinstance(exc, TooManyAttempts):
                    response["Retry-After"] = str(exc.retry_after)
                return response
            request.user = result.user
            request.custody_auth_method = result.method
            request.custody_token = result.token
            update_context(
                user_id=result.user.pk,
                username=result.user.get_username(),
                auth_method=result.method,
                token_id=result.token.pk if result.token else None,
            )
            origin = _sent_from_another_site(request)
            if origin is not None:
                message = CROSS_SITE_WRITE.format(origin=origin[:200])
                refused = PermissionDenied(
                    message,
                    refusal=refusals.denial(
                        "request.cross_site.denied",
                        message,
                        object_type="request",
                        object_id=request.path[:255],
                    ),
                )
                return response_for_path(request.path, refused)
            # A write that reaches this point comes from no other site's page (above), so
            # CSRF has nothing left to protect: it needs no CSRF token (sessions still do).
            request._dont_enforce_csrf_checks = True
        elif request.user.is_authenticated:
            request.custody_auth_method = "session"
            update_context(
                user_id=request.user.pk,
                username=request.user.get_username(),
                auth_method="session",
            )
        return self.get_response(request)

from __future__ import annotations

from core import errors
from core.context import RequestContext, new_request_id, reset_context, set_context


class RequestContextMiddleware:
    """Gives each request an id (echoed as X-Request-Id) and the facts the audit trail records."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id()
        ctx = RequestContext(
            request_id=request_id,
            client_ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
            auth_method="anonymous",
        )
        token = set_context(ctx)
        try:
            response = self.get_response(request)
        finally:
            reset_context(token)
        response["X-Request-Id"] = request_id
        return response


# The longest URL (path and query string, percent-encoded) Custody answers. gunicorn runs
# with --limit-request-line 0 (see scripts/run.sh) so that a longer one gets this JSON 414
# rather than gunicorn's HTML page; 8190 is gunicorn's largest request-line limit.
MAX_URI_BYTES = 8190


class RequestLimitsMiddleware:
    """Limits on the request itself, answered in the error shape of the surface asked
    (core.errors.response_for_path):

    - a URL longer than MAX_URI_BYTES is a 414."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        uri = meta.get("RAW_URI") or request.get_full_path()
        if len(uri) > MAX_URI_BYTES:
            return errors.response_for_path(
                request.path,
                errors.ApplicationError(
                    f"The URL is {len(uri)} bytes long; this server accepts at most "
                    f"{MAX_URI_BYTES}. Send long values in a POST body.",
                    error_code="INVALID_PARAMETER_VALUE",
                    http_status=414,
                ),
            )
        return self.get_response(request)


def _unstorable(value) -> bool:
    """NUL and lone surrogates: PostgreSQL text cannot hold them, so they would fail late."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


# The MLflow routes check every field themselves and answer in MLflow's error shape.
MLFLOW_PREFIXES = ("/api/2.0/", "/ajax-api/")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
UNSTORABLE = (
    "The request contains NUL characters or invalid Unicode (lone surrogates), which "
    "cannot be stored."
)


class RejectUnstorableInputMiddleware:
    """Requests whose path, query string, form fields or JSON body carry text the database
    cannot store are refused up front with a 400, on every route but the MLflow ones (the
    API as JSON, pages as plain text), instead of failing late in a query."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(MLFLOW_PREFIXES) and self._unstorable_input(request):
            from django.http import HttpResponse, JsonResponse

            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "error": {
                            "code": "INVALID_PARAMETER_VALUE",
                            "message": UNSTORABLE,
                            "details": {},
                        }
                    },
                    status=400,
                )
            return HttpResponse(
                f"Bad request: {UNSTORABLE}\n", status=400, content_type="text/plain"
            )
        return self.get_response(request)

    @staticmethod
    def _unstorable_input(request) -> bool:
        import json

        if _unstorable(request.path):
            return True
        if any(_unstorable(k) or _unstorable(v) for k, vs in request.GET.lists() for v in vs):
            return True
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return False
        if request.content_type in FORM_TYPES:
            try:
                form = request.POST
            except Exception:  # noqa: BLE001 - a malformed body is the view's 400 to give
                return False
            return any(_unstorable(k) or _unstorable(v) for k, vs in form.lists() for v in vs)
        if request.content_type == "application/json" and request.body:
            try:
                return _unstorable(json.loads(request.body))
            except (ValueError, RecursionError):
                return False  # the parser answers malformed JSON with its own 400
        return False

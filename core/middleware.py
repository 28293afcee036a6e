from __future__ import annotations

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


class RejectUnstorableInputMiddleware:
    """/api/v1 requests whose query string or JSON body carries text the database cannot
    store are refused up front with a 400 (the MLflow routes check each field themselves)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/v1/"):
            import json

            from django.http import JsonResponse

            bad = any(_unstorable(v) for values in request.GET.lists() for v in values[1])
            if not bad and request.content_type == "application/json" and request.body:
                try:
                    bad = _unstorable(json.loads(request.body))
                except (ValueError, RecursionError):
                    bad = False  # the parser answers malformed JSON with its own 400
            if bad:
                return JsonResponse(
                    {
                        "error": {
                            "code": "INVALID_PARAMETER_VALUE",
                            "message": "The request contains NUL characters or invalid "
                            "Unicode (lone surrogates), which cannot be stored.",
                            "details": {},
                        }
                    },
                    status=400,
                )
        return self.get_response(request)

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

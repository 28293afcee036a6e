from __future__ import annotations

import io

from django.conf import settings

from core import errors
from core.context import RequestContext, new_request_id, reset_context, set_context


class RequestContextMiddleware:
    """Gives each request an id (returned as X-Request-ID, in every error body, on the request's
    log lines, audit events and the Celery tasks it causes) and the facts the audit trail
    records. The id is always made here: one sent by the client is not trusted, since audit
    events carry it."""

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
        response["X-Request-ID"] = request_id
        return response


# The longest URL (path and query string, percent-encoded) Custody answers. gunicorn runs
# with --limit-request-line 0 (see scripts/run.sh) so that a longer one gets this JSON 414
# rather than gunicorn's HTML page; 8190 is gunicorn's largest request-line limit.
MAX_URI_BYTES = 8190
_READ_CHUNK = 64 * 1024


class RequestLimitsMiddleware:
    """Limits on the request itself, answered in the error shape of the surface asked
    (core.errors.response_for_path):

    - a URL longer than MAX_URI_BYTES is a 414;
    - a body sent with `Transfer-Encoding: chunked` has no Content-Length, so Django would
      read it as empty. When the server ends the de-chunked input at the body's end
      (`wsgi.input_terminated`, as gunicorn does), it is read here, up to
      DATA_UPLOAD_MAX_MEMORY_SIZE (else 413), and handed on as if its length had been sent;
      otherwise the answer is 411. Artifact uploads (`raw_body` handlers) stream chunked
      bodies themselves and are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        uri = meta.get("RAW_URI") or request.get_full_path()
        if len(uri) > MAX_URI_BYTES:
            from core.mlflow_api import check_overlong_query

            refused = check_overlong_query(request)
            if refused is not None:
                # An MLflow route's own limit (e.g. at most 100 run_ids) says more than 414.
                return errors.response_for_path(request.path, refused)
            return errors.response_for_path(
                request.path,
                errors.ApplicationError(
                    f"The URL is {len(uri)} bytes long; this server accepts at most "
                    f"{MAX_URI_BYTES}. Send long values in a POST body.",
                    error_code="INVALID_PARAMETER_VALUE",
                    http_status=414,
                ),
            )
        if (
            not meta.get("CONTENT_LENGTH")
            and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
            and not _streams_its_body(request)
        ):
            refused = self._read_chunked_body(request)
            if refused is not None:
                return errors.response_for_path(request.path, refused)
        return self.get_response(request)

    @staticmethod
    def _read_chunked_body(request) -> errors.ApplicationError | None:
        meta = request.META
        if not meta.get("wsgi.input_terminated"):
            return errors.ApplicationError(
                "A request body sent without Content-Length (chunked) cannot be read by this "
                "server; send Content-Length.",
                error_code="BAD_REQUEST",
                http_status=411,
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        stream, parts, size = meta["wsgi.input"], [], 0
        while chunk := stream.read(_READ_CHUNK):
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                return errors.PayloadTooLarge("Request body is larger than this server accepts.")
        body = b"".join(parts)
        # What HttpRequest.body itself leaves behind after reading, so that request.body,
        # request.POST, request.read() and DRF all see this body.
        request._body = body
        request._stream = io.BytesIO(body)
        meta["CONTENT_LENGTH"] = str(len(body))
        return None


def _streams_its_body(request) -> bool:
    """Whether the route reads the request stream itself (an artifact upload)."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    route = getattr(match.func, "mlflow_route", None)
    entry = route.methods.get(request.method) if route is not None else None
    return entry is not None and getattr(entry[0], "raw_body", False)


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
                    errors.api_error_body("INVALID_PARAMETER_VALUE", UNSTORABLE), status=400
                )
            return HttpResponse(
                errors.text_error_body(f"Bad request: {UNSTORABLE}"),
                status=400,
                content_type="text/plain",
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

"""The one exception hierarchy of Custody, and the one place it becomes HTTP.

Services raise these; the MLflow wire layer renders them as `{"error_code", "message"}`
and the /api/v1 layer as `{"error": {"code", "message", "details"}}`. A client mistake is
always a 4xx: the MLflow client retries 5xx answers for minutes.

Every error body also carries the request's id (`request_id`, the `X-Request-ID` header's
value), so that a client's report can be found in the server's JSON log and audit trail:
the bodies are built only by `mlflow_error_body`, `api_error_body` and `text_error_body`."""

from __future__ import annotations

import errno
import logging
from typing import Any

logger = logging.getLogger(__name__)

# SQLSTATEs of a transaction the database rolled back because it met a concurrent one
# (deadlock_detected, serialization_failure): the change was not made and may be sent again.
ROLLED_BACK_BY_CONCURRENCY = frozenset({"40P01", "40001"})

# MLflow's own error_code -> HTTP status table (reference/mlflow-protocol.md §3.2).
MLFLOW_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "ABORTED": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
}


class ApplicationError(Exception):
    error_code = "INTERNAL_ERROR"
    http_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
        refusal: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # What the audit trail records of this refused attempt (audit.record keyword
        # arguments; see core.refusals), written once the refused call has rolled back.
        self.refusal = refusal
        if refusal is not None:
            from core import refusals

            refusals.register(self)
        if error_code is not None:
            self.error_code = error_code
        if http_status is not None:
            self.http_status = http_status
        self.details = details or {}

    @property
    def status(self) -> int:
        if self.http_status is not None:
            return self.http_status
        return MLFLOW_STATUS.get(self.error_code, 500)


def current_request_id() -> str:
    from core.context import current

    return current().request_id


def mlflow_error_body(error_code: str, message: str) -> dict[str, Any]:
    """MLflow's error shape; the client reads `error_code` and `message` and ignores the rest."""
    return {"error_code": error_code, "message": message, "request_id": current_request_id()}


def api_error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The /api/v1 error shape."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": current_request_id(),
        }
    }


def text_error_body(message: str) -> str:
    """A plain-text error for pages."""
    return f"{message}\nRequest id: {current_request_id()}\n"


class InvalidParameterValue(ApplicationError):
    error_code = "INVALID_PARAMETER_VALUE"


class ResourceDoesNotExist(ApplicationError):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ResourceAlreadyExists(ApplicationError):
    error_code = "RESOURCE_ALREADY_EXISTS"


class PermissionDenied(ApplicationError):
    error_code = "PERMISSION_DENIED"


class Unauthenticated(ApplicationError):
    error_code = "UNAUTHENTICATED"


class Conflict(ApplicationError):
    error_code = "RESOURCE_CONFLICT"


class InvalidState(ApplicationError):
    """The object is not in a state that allows this yet (e.g. a promotion awaiting
    approvals); the message says what is missing."""

    error_code = "INVALID_STATE"


class PayloadTooLarge(ApplicationError):
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 413


class StorageFull(ApplicationError):
    """The artifact store has no room (a full disk, a quota). 507 is a 5xx the MLflow client
    does not retry (it retries 408, 429, 500, 502, 503 and 504: mlflow/utils/request_utils.py
    _TRANSIENT_FAILURE_RESPONSE_CODES), so an upload fails once, with this message, instead of
    being re-sent for minutes."""

    error_code = "QUOTA_EXCEEDED"
    http_status = 507


class StorageRefused(ApplicationError):
    """The artifact store refused a write for a reason no retry of the client fixes (read-only
    file system, permissions or credentials of the server). Not retried either (507)."""

    error_code = "IO_ERROR"
    http_status = 507


# errno values meaning "no room": no space left, quota exceeded, file too large for the FS.
NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
REFUSED_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def storage_error(exc: OSError, where: str) -> ApplicationError | None:
    """The client-readable error for an OSError from the artifact store at `where`, or None
    when it is not a storage condition (then it stays an internal error)."""
    if exc.errno in NO_ROOM_ERRNOS:
        return StorageFull(
            f"The artifact store is full ({where}: {exc.strerror or 'no space left'}); nothing "
            "was stored. Free space or raise the quota, then upload again."
        )
    if exc.errno in REFUSED_ERRNOS:
        return StorageRefused(
            f"The artifact store refused the write ({where}: {exc.strerror}); nothing was "
            "stored. The server's storage needs an administrator."
        )
    return None


class NotImplementedOnServer(ApplicationError):
    error_code = "NOT_IMPLEMENTED"


class EndpointNotFound(ApplicationError):
    error_code = "ENDPOINT_NOT_FOUND"


def translate(exc: BaseException) -> ApplicationError | None:
    """Map framework exceptions that can be caused by client input to ApplicationError."""
    from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
    from django.core.exceptions import ValidationError as DjangoValidationError

    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("Request body is larger than this server accepts.")
    if isinstance(exc, SuspiciousOperation):
        return InvalidParameterValue(
            "The request was refused as malformed.", error_code="BAD_REQUEST"
        )
    if isinstance(exc, DjangoValidationError):
        return InvalidParameterValue("; ".join(exc.messages))
    if getattr(exc.__cause__, "sqlstate", None) in ROLLED_BACK_BY_CONCURRENCY:
        # 503: the MLflow client retries it (mlflow/utils/request_utils.py).
        logger.warning("transaction rolled back by the database: %s", exc)
        return ApplicationError(
            "This change met a concurrent one and the database rolled it back; it was not "
            "made. Send it again.",
            error_code="TEMPORARILY_UNAVAILABLE",
        )
    if isinstance(exc, OSError) and exc.errno in NO_ROOM_ERRNOS:
        # A full disk anywhere below a request (the stores translate their own; this is the
        # net for the rest): a client-readable error the MLflow client does not retry.
        return storage_error(exc, "server storage")
    return None


# Paths whose clients read MLflow's error shape: the MLflow client's REST API and the root
# paths of the feature families Custody answers with a 501 (core/mlflow_unsupported.py). The
# rest of /api/ is the Custody API.
MLFLOW_PATH_PREFIXES = (
    "/api/2.0/",
    "/api/3.0/",
    "/ajax-api/",
    "/v1/traces",
    "/graphql",
    "/gateway/",
)


def response_for_path(path: str, exc: ApplicationError):
    """`exc` in the error shape of the surface `path` belongs to: MLflow's on the MLflow
    routes, the /api/v1 one on the rest of /api/, plain text on pages. For refusals made
    before any view's own mapping runs (an oversized body read by a middleware, a URL over
    the limit)."""
    from django.http import HttpResponse, JsonResponse

    body: dict[str, Any]
    if path.startswith(MLFLOW_PATH_PREFIXES):
        return JsonResponse(mlflow_error_body(exc.error_code, exc.message), status=exc.status)
    if path.startswith("/api/"):
        body = api_error_body(exc.error_code, exc.message, exc.details)
        return JsonResponse(body, status=exc.status)
    return HttpResponse(text_error_body(exc.message), status=exc.status, content_type="text/plain")


def api_exception_handler(exc: Exception, context: dict[str, Any]):
    """DRF exception handler for /api/v1: one JSON error shape for every failure."""
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler

    app_error = translate(exc)
    if app_error is not None:
        body = api_error_body(app_error.error_code, app_error.message, app_error.details)
        return Response(body, status=app_error.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        code, message = "INVALID_PARAMETER_VALUE", "The request is invalid; see details."
        details = response.data if isinstance(response.data, dict) else {"errors": response.data}
    else:
        code = getattr(exc, "default_code", "error").upper()
        message = str(getattr(exc, "detail", exc))
        details = {}
    response.data = api_error_body(code, message, details)
    return response

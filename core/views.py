from django.http import HttpResponse, JsonResponse

from core import errors

CUSTODY_VERSION = "0.1.0"
_API_PREFIXES = ("/api/", "/ajax-api/")


def health(request):
    return HttpResponse("OK", content_type="text/plain")


def version(request):
    return HttpResponse(CUSTODY_VERSION, content_type="text/plain")


def not_found(request, exception=None):
    # API clients get a JSON body: the MLflow client reads a non-JSON 404 as a missing
    # endpoint, and a JSON one with ENDPOINT_NOT_FOUND means the same without guessing.
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(
            errors.mlflow_error_body("ENDPOINT_NOT_FOUND", "No API endpoint at this path."),
            status=404,
        )
    return _page("404.html", request, 404, "Not found")


def forbidden(request, exception=None):
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(
            errors.mlflow_error_body("PERMISSION_DENIED", "Permission denied."), status=403
        )
    return _page("403.html", request, 403, "Forbidden")


def _page(template: str, request, status: int, fallback: str) -> HttpResponse:
    """The styled error page with the site's navigation; plain text if even that fails (a
    broken template must not turn an error page into a second error)."""
    from django.template import loader

    try:
        # A 500 page renders without the request: its context processors may be what failed.
        body = loader.render_to_string(
            template,
            {"request_id": errors.current_request_id()},
            request=request if status != 500 else None,
        )
    except Exception:  # noqa: BLE001 - the last resort of an error handler
        return HttpResponse(
            errors.text_error_body(fallback), status=status, content_type="text/plain"
        )
    return HttpResponse(body, status=status)


def bad_request(request, exception=None):
    """Django's answer to a SuspiciousOperation that no view mapped itself, typically a body
    over DATA_UPLOAD_MAX_MEMORY_SIZE met by a middleware: a 413 for that (any other is a
    400), in the error shape of the surface asked, never Django's HTML page."""
    app_error = errors.translate(exception) if exception is not None else None
    if app_error is None:
        app_error = errors.InvalidParameterValue(
            "The request was refused as malformed.", error_code="BAD_REQUEST"
        )
    return errors.response_for_path(request.path, app_error)


def server_error(request):
    if request.path.startswith(_API_PREFIXES):
        return JsonResponse(
            errors.mlflow_error_body("INTERNAL_ERROR", "Internal error."), status=500
        )
    return _page("500.html", request, 500, "Internal error")

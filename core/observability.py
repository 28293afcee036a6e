"""What an operator watches: the Prometheus metrics (`/metrics`) and the one JSON log line per
request. The request metrics are recorded here for every request; the domain's own figures
(open reviews, Production versions, the audit chain, the outbox) are computed at scrape time
by collectors the apps register (`register_collector`), so they cost nothing per request.

Under gunicorn each worker is its own process: with PROMETHEUS_MULTIPROC_DIR set (the
gunicorn configuration, config/gunicorn.conf.py, sets it up) every process writes its
counters to files there and a scrape adds them up (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from core import errors
from core.context import current

request_logger = logging.getLogger("custody.request")
logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "custody_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "custody_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUERIES = Histogram(
    "custody_http_request_db_queries",
    "Database queries per request",
    ["route"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 250),
)
CELERY_TASKS = Counter(
    "custody_celery_tasks_total",
    "Celery tasks finished, by outcome (success, failure, retry)",
    ["task", "outcome"],
)
# Every webhook delivery attempt (webhooks.services.delivery_attempt), by its outcome.
WEBHOOK_DELIVERIES = Counter(
    "custody_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, failed)",
    ["outcome"],
)

# Collectors whose figures are read at scrape time (see register_collector).
_collectors: list[Callable[[], Iterable[Metric]]] = []


def register_collector(collect: Callable[[], Iterable[Metric]]) -> None:
    """`collect()` yields prometheus_client metric families, computed when /metrics is read.
    Registered by the apps in their ready(); a failing collector is logged and skipped."""
    if collect not in _collectors:
        _collectors.append(collect)


class _DomainCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        for collect in list(_collectors):
            try:
                yield from collect()
            except Exception:  # noqa: BLE001 - one broken figure must not hide the rest
                logger.exception("metrics collector %s failed", getattr(collect, "__name__", ""))


_DOMAIN = _DomainCollector()
_MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if not _MULTIPROCESS:
    REGISTRY.register(_DOMAIN)


def _registry() -> CollectorRegistry:
    """One process: its own registry. Several (gunicorn workers): the sum of every process's
    files, gathered anew for each scrape, plus the domain's figures."""
    if not _MULTIPROCESS:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_DOMAIN)
    return registry


def metrics(request):
    """GET /metrics: the Prometheus text format, for a scraper that sends
    `Authorization: Bearer <CUSTODY_METRICS_TOKEN>`. Without that setting the route is off."""
    token = settings.CUSTODY_METRICS_TOKEN
    if not token:
        return HttpResponse(
            errors.text_error_body(
                "Metrics are off: set CUSTODY_METRICS_TOKEN and scrape with "
                "'Authorization: Bearer <token>'."
            ),
            status=404,
            content_type="text/plain",
        )
    sent = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
        response = HttpResponse(
            errors.text_error_body("Send 'Authorization: Bearer <CUSTODY_METRICS_TOKEN>'."),
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


class _QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


# Label values must stay few: a method a client made up is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return match.route or match.view_name or "<unnamed>"


class RequestObservationMiddleware:
    """Times and counts every request, records its metrics and writes its JSON log line.
    Sits inside RequestContextMiddleware, so the request id and (once authentication has run)
    the user are in the request context when the line is written."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        queries = _QueryCounter()
        status = 500
        try:
            with connections["default"].execute_wrapper(queries):
                response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            duration = time.perf_counter() - started
            route = _route_of(request)
            method = request.method if request.method in _METHODS else "other"
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(duration)
            QUERIES.labels(route).observe(queries.count)
            ctx = current()
            request_logger.info(
                "%s %s %s",
                method,
                request.path,
                status,
                extra={
                    "request_id": ctx.request_id,
                    "user": ctx.username,
                    "auth": ctx.auth_method,
                    "method": method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 1),
                    "queries": queries.count,
                    "client_ip": ctx.client_ip,
                },
            )


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or the Celery task's, see core.celery_context) on every
    log record, so that every JSON line can be joined to its request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current().request_id
        return True

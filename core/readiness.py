"""/ready: can this instance serve writes? The database (reachable, and every migration of this
code applied), the broker when REDIS_URL is set, and whatever the apps register (tracking: the
artifact store is writable). 200 when every check passes, else 503 naming the failing ones.
The body says which check failed and a short reason class, and how long each check took in
milliseconds; details go to the log only, since the route is public."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

# name -> check; a check returns None when fine, or raises / returns a short reason.
_CHECKS: dict[str, Callable[[], str | None]] = {}


def register_check(name: str, check: Callable[[], str | None]) -> None:
    _CHECKS[name] = check


def _database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


_migrated = False


def _migrations() -> str | None:
    """Every migration of this code is applied. Read from disk once per process while any is
    missing (an upgrade whose migration job has not run yet); once all are applied, they stay
    applied for this code."""
    global _migrated
    if _migrated:
        return None
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        logger.warning("readiness: %d migrations not applied, e.g. %s", len(plan), plan[0][0])
        return "not migrated"
    _migrated = True
    return None


def _broker() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1, retry_on_timeout=False
    )
    try:
        client.ping()
    finally:
        client.close()
    return None


def run_checks() -> tuple[dict[str, str], dict[str, float]]:
    """Each check's result ("ok" or "failing: <reason>") and its time in milliseconds."""
    checks = {"database": _database, "migrations": _migrations, **_CHECKS}
    if settings.REDIS_URL:
        checks["broker"] = _broker
    results: dict[str, str] = {}
    milliseconds: dict[str, float] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        reason: str | None
        if name == "migrations" and results["database"] != "ok":
            reason = "database unavailable"
        else:
            try:
                reason = check()
            except Exception as exc:  # noqa: BLE001 - every failure means "not ready"
                logger.warning("readiness check %s failed: %r", name, exc)
                reason = _reason(exc)
        milliseconds[name] = round((time.perf_counter() - started) * 1000, 1)
        results[name] = "ok" if reason is None else f"failing: {reason}"
    return results, milliseconds


def _reason(exc: BaseException) -> str:
    from core.errors import StorageFull, StorageRefused

    if isinstance(exc, StorageFull):
        return "full"
    if isinstance(exc, StorageRefused):
        return "not writable"
    return "unavailable"


def ready(request):
    results, milliseconds = run_checks()
    ok = all(v == "ok" for v in results.values())
    body = {"status": "ready" if ok else "not ready", "checks": results, "ms": milliseconds}
    return JsonResponse(body, status=200 if ok else 503)

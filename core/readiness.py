"""/ready: can this instance serve writes? The database, the broker when REDIS_URL is set, and
whatever the apps register (tracking: the artifact store is writable). 200 when every check
passes, else 503 naming the failing ones. The body says which check failed and a short reason
class; details go to the log only, since the route is public."""

from __future__ import annotations

import logging
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


def run_checks() -> dict[str, str]:
    checks = {"database": _database, **_CHECKS}
    if settings.REDIS_URL:
        checks["broker"] = _broker
    results = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # noqa: BLE001 - every failure means "not ready"
            logger.warning("readiness check %s failed: %r", name, exc)
            reason = _reason(exc)
        results[name] = "ok" if reason is None else f"failing: {reason}"
    return results


def _reason(exc: BaseException) -> str:
    from core.errors import StorageFull, StorageRefused

    if isinstance(exc, StorageFull):
        return "full"
    if isinstance(exc, StorageRefused):
        return "not writable"
    return "unavailable"


def ready(request):
    results = run_checks()
    ok = all(v == "ok" for v in results.values())
    return JsonResponse(
        {"status": "ready" if ok else "not ready", "checks": results}, status=200 if ok else 503
    )

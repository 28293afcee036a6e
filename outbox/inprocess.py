"""The relay of the embedded default (no REDIS_URL, tasks run in-process, no beat): a daemon
thread in each web process runs `relay()` every CUSTODY_INPROCESS_RELAY_SECONDS, so jobs
with a countdown (archiving after a grace period) and jobs whose in-process run failed are
still picked up. Started by config/wsgi.py; with Redis, beat runs outbox.relay instead."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_started = False


def start(interval: float) -> bool:
    """Start the thread once per process; False when it already runs or interval <= 0."""
    global _started
    if interval <= 0:
        return False
    with _lock:
        if _started:
            return False
        _started = True
    threading.Thread(target=_loop, args=(interval,), name="outbox-relay", daemon=True).start()
    return True


def _loop(interval: float) -> None:
    from django.db import connection

    from outbox import services

    while True:
        time.sleep(interval)
        try:
            services.relay()
        except Exception:  # noqa: BLE001 - the loop must outlive a failed round
            logger.exception("the in-process outbox relay failed; trying again")
        finally:
            connection.close()

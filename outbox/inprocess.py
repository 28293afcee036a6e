"""The periodic work of the embedded default (no REDIS_URL: tasks run in-process, no beat),
run by a daemon thread in each web process (started by config/wsgi.py):

- every process runs the outbox relay every CUSTODY_INPROCESS_RELAY_SECONDS, so jobs with a
  countdown (archiving after a grace period) and jobs whose in-process run failed are still
  picked up (claims are compare-and-set, so processes never run a job twice at once);
- one process at a time (the holder of a lock file under CUSTODY_DATA_DIR; another takes
  over when it exits) runs every other entry of CELERY_BEAT_SCHEDULE when it is due: the
  signed audit checkpoints, the archiving reconciler, and whatever is added there.

The schedule lives in one place, settings.CELERY_BEAT_SCHEDULE, which Celery beat runs in the
production layout (docs/operations.md, "Periodic tasks")."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_started = False
RELAY_ENTRY = "outbox-relay"
TICK_SECONDS = 1.0


def start(relay_interval: float, periodic: bool = True) -> bool:
    """Start the thread once per process; False when it already runs or there is nothing
    to run (relay_interval <= 0 and periodic off)."""
    global _started
    if relay_interval <= 0 and not periodic:
        return False
    with _lock:
        if _started:
            return False
        _started = True
    threading.Thread(
        target=_loop, args=(relay_interval, periodic), name="custody-periodic", daemon=True
    ).start()
    return True


class Schedule:
    """The due-time bookkeeping of CELERY_BEAT_SCHEDULE (less the relay), with Celery's own
    schedule objects: numbers and timedeltas become intervals, crontabs stay crontabs."""

    def __init__(self, entries: dict, now: datetime):
        from celery.schedules import maybe_schedule

        self.entries = {
            name: (entry, maybe_schedule(entry["schedule"]))
            for name, entry in entries.items()
            if name != RELAY_ENTRY
        }
        self.last_run = dict.fromkeys(self.entries, now)

    def due(self) -> list[tuple[str, dict]]:
        due = []
        for name, (entry, schedule) in self.entries.items():
            is_due, _ = schedule.is_due(self.last_run[name])
            if is_due:
                due.append((name, entry))
        return due

    def ran(self, name: str, at: datetime) -> None:
        self.last_run[name] = at


def run_entry(name: str, entry: dict) -> bool:
    """Run one schedule entry's task here and now; False (and logged) when it failed."""
    from config.celery import app

    task = app.tasks.get(entry["task"])
    if task is None:
        app.autodiscover_tasks(force=True)
        task = app.tasks.get(entry["task"])
    if task is None:
        logger.error("periodic entry %s names an unknown task %r", name, entry["task"])
        return False
    result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
    if result.failed():
        logger.error("periodic task %s failed: %r", entry["task"], result.result)
        return False
    return True


class _LeaderLock:
    """Held by one process per data directory; tried again on every tick by the others."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def held(self) -> bool:
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True


def _loop(relay_interval: float, periodic: bool) -> None:
    from django.conf import settings
    from django.db import connection

    from config.celery import app
    from outbox import services

    now = app.now
    schedule = Schedule(settings.CELERY_BEAT_SCHEDULE, now()) if periodic else None
    leader = _LeaderLock(Path(settings.DATA_DIR) / "periodic.lock")
    next_relay = time.monotonic() + relay_interval
    while True:
        time.sleep(TICK_SECONDS)
        try:
            if relay_interval > 0 and time.monotonic() >= next_relay:
                next_relay = time.monotonic() + relay_interval
                services.relay()
            if schedule is not None and leader.held():
                for name, entry in schedule.due():
                    schedule.ran(name, now())
                    run_entry(name, entry)
        except Exception:  # noqa: BLE001 - the loop must outlive a failed round
            logger.exception("in-process periodic work failed; trying again")
        finally:
            connection.close()

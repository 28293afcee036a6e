"""The failed-sign-in throttle shared by API basic auth, the web login and the admin login.

Counters are shared by every process: in Redis when REDIS_URL is set, otherwise in the
database (accounts.LoginFailureCounter). Each counter is a fixed window per username and
client address: the first failure opens a window of FAILED_LOGIN_WINDOW_SECONDS, and once it
holds FAILED_LOGIN_LIMIT failures every sign-in for that pair (the right password included) is
refused until the window ends.

When Redis fails, the database counter takes over (with a logged warning): a Redis outage
never turns a sign-in into a 500, and the throttle keeps counting. See docs/security.md."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import LoginFailureCounter
from core import process_cache
from core.errors import ApplicationError

FAILED_LOGIN_LIMIT = 10
FAILED_LOGIN_WINDOW_SECONDS = 300
# Redis is a round trip on every sign-in with a password the worker has not verified; when
# it stops answering, give up quickly and count in the database instead of holding it.
REDIS_TIMEOUT_SECONDS = 0.5

logger = logging.getLogger(__name__)


class TooManyAttempts(ApplicationError):
    error_code = "REQUEST_LIMIT_EXCEEDED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed sign-in attempts for this user from this address; "
            f"try again in {retry_after} seconds."
        )
        self.retry_after = retry_after


def throttle_key(username: str, client_ip: str) -> str:
    return hashlib.sha256(f"{username}\x00{client_ip}".encode("utf-8", "replace")).hexdigest()


# key -> (failures, window start) or None, as stored; exact while the `throttle` version is
# the one this request read (see DatabaseCounters).
_COUNTERS = process_cache.Store(process_cache.THROTTLE, "failed-logins")
# key -> (failures, wall-clock end of the window) as read from Redis, for remembered sign-ins.
_REDIS_COUNTERS = process_cache.Store(process_cache.THROTTLE, "failed-logins-redis")


class DatabaseCounters:
    """One row per key. Every write is a single conditional UPDATE (or an INSERT that the
    unique key arbitrates), so concurrent failures from many processes are all counted.

    Each write also bumps the `throttle` cache version in its transaction. A counter this
    process has read since its last version check is answered from memory: exactly as stored
    when check_not_throttled has just read the versions (`core.process_cache`, one small
    query that the request's other caches share), at most the poll interval old for a
    remembered sign-in. Windows end by the clock, checked on every read."""

    def failures(self, key: str) -> tuple[int, int]:
        now = timezone.now()
        window = timedelta(seconds=FAILED_LOGIN_WINDOW_SECONDS)
        # After a guess's forced read a no-op; for a remembered sign-in, the polled check.
        process_cache.refresh()
        row = _COUNTERS.get_or_load(
            key,
            lambda: (
                LoginFailureCounter.objects.filter(key=key)
                .values_list("failures", "window_started_at")
                .first()
            ),
        )
        if row is None or row[1] <= now - window:
            return 0, 0
        return row[0], _seconds_left(row[1] + window - now)

    def add_failure(self, key: str) -> None:
        with transaction.atomic():
            self._add_failure(key)
            process_cache.bump(process_cache.THROTTLE)

    def _add_failure(self, key: str) -> None:
        now = timezone.now()
        expired = now - timedelta(seconds=FAILED_LOGIN_WINDOW_SECONDS)
        rows = LoginFailureCounter.objects.filter(key=key)
        for _ in range(3):
            if rows.filter(window_started_at__gt=expired).update(failures=F("failures") + 1):
                return
            if rows.filter(window_started_at__lte=expired).update(
                failures=1, window_started_at=now
            ):
                return
            try:
                with transaction.atomic():
                    LoginFailureCounter.objects.create(key=key, failures=1, window_started_at=now)
            except IntegrityError:
                continue  # another process created it first: count on its row
            # A new key is the moment to forget windows that ended; keeps the table small
            # without a periodic job.
            LoginFailureCounter.objects.filter(window_started_at__lte=expired).delete()
            return
        logger.warning("login throttle: could not record a failed sign-in after 3 attempts")


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )

    @staticmethod
    def _key(key: str) -> str:
        return f"custody:failed-login:{key}"

    def failures(self, key: str) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self._key(key))
        pipe.ttl(self._key(key))
        count, ttl = pipe.execute()
        if count is None:
            return 0, 0
        return int(count), max(int(ttl), 1)

    def remembered_failures(self, key: str) -> tuple[int, int]:
        """The counter as this process last read it, unless a failure was recorded anywhere
        since its last version check (`add_failure` bumps the `throttle` version)."""
        process_cache.refresh()
        count, ends_at = _REDIS_COUNTERS.get_or_load(key, lambda: self._read_until(key))
        left = ends_at - time.time()
        return (count, _seconds_left(timedelta(seconds=left))) if left > 0 else (0, 0)

    def _read_until(self, key: str) -> tuple[int, float]:
        count, ttl = self.failures(key)
        return count, time.time() + ttl

    def add_failure(self, key: str) -> None:
        # MULTI/EXEC: the key and its expiry appear together, so a counter never outlives
        # its window.
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(key), 0, ex=FAILED_LOGIN_WINDOW_SECONDS, nx=True)
        pipe.incr(self._key(key))
        pipe.execute()


def _seconds_left(delta: timedelta) -> int:
    return max(math.ceil(delta.total_seconds()), 1)


_database = DatabaseCounters()
_redis: dict[str, RedisCounters] = {}
_redis_lock = threading.Lock()


def _redis_counters() -> RedisCounters | None:
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    with _redis_lock:
        if url not in _redis:
            _redis[url] = RedisCounters(url)
        return _redis[url]


def _store_failed(action: str, exc: Exception) -> None:
    logger.warning(
        "login throttle: Redis failed to %s (%s: %s); counting in the database instead",
        action,
        type(exc).__name__,
        exc,
    )


def check_not_throttled(username: str, client_ip: str, *, remembered: bool = False) -> None:
    """Raises TooManyAttempts (HTTP 429, with the seconds until the window ends) when this
    username has failed too often from this address.

    `remembered`: the credentials are ones this process has already verified against what is
    stored now (a password it checked before, or a token). The count then comes from what
    the process last read, unless a failure was recorded anywhere since its last version
    check (at most `CUSTODY_CACHE_POLL_SECONDS` old; any other sign-in on the process reads
    the versions at once). Every other sign-in reads the stored count, so each guess is
    counted against the exact limit (docs/security.md, "Login throttling")."""
    key = throttle_key(username, client_ip)
    if not remembered:
        # With either store: a guess brings this process up to date, so that the password it
        # remembers is refused at once once the guesses have reached the limit anywhere.
        process_cache.refresh(force=True)
    counters = _redis_counters()
    failures, retry_after = 0, 0
    if counters is not None:
        try:
            if remembered:
                failures, retry_after = counters.remembered_failures(key)
            else:
                failures, retry_after = counters.failures(key)
        except Exception as exc:  # noqa: BLE001 - any store failure falls back, never a 500
            _store_failed("read a counter", exc)
            counters = None
    if counters is None:
        failures, retry_after = _database.failures(key)
    if failures >= FAILED_LOGIN_LIMIT:
        raise TooManyAttempts(retry_after)


def record_failed_login(username: str, client_ip: str) -> None:
    key = throttle_key(username, client_ip)
    counters = _redis_counters()
    if counters is not None:
        try:
            counters.add_failure(key)
        except Exception as exc:  # noqa: BLE001 - any store failure falls back, never a 500
            _store_failed("count a failure", exc)
        else:
            # After the count, so that a process dropping its remembered counters reads it.
            with transaction.atomic():
                process_cache.bump(process_cache.THROTTLE)
            return
    _database.add_failure(key)

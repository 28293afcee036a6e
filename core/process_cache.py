"""Per-process caches with bounded staleness, invalidated through the database.

Each cache belongs to a family whose version is one row of `core.CacheVersion`:

- `access`: API tokens, users (for HTTP basic), a user's roles, the grants on an object.
  The version changes in the same transaction as a token revoke, a user deactivation or
  password change, a change of roles or of grants (`bump`, called by the services and by
  model signals, so the admin and every other path that saves those rows bump it too).
  A process reads the versions at most every `CUSTODY_CACHE_POLL_SECONDS` (0.5 s) and drops
  a family's caches when its version differs from the one they were filled under: a change
  is seen by every worker on every machine within that interval, and by the process that
  made it at once.
- `resolution`: what a model name, stage or alias resolves to (`/api/v1/resolve`,
  get-latest-versions, alias reads). Its version changes in the same transaction as any
  change to a registered model, a version, an alias or a deployment. Readers that promise
  "never stale after the change commits" call `refresh_for_serving`: one small query per
  request (or a share of one that began after the request asked, see `_read_begun_after_now`),
  then the answer from memory. A poller that sends `Cache-Control: max-stale` accepts an
  answer up to the poll interval old instead (`refresh_for_serving` does both): no query at
  all for most of its requests.
- `lifecycle`: where a run's or logged model's files are and whether it is active (the
  artifact owners of tracking.artifact_locations). Its version is changed by the database
  itself: triggers on the run and logged-model tables give it a new value in the statement
  that changes a row's lifecycle stage, experiment or artifact directory, or deletes the row
  (tracking migration 0010), so no path (a service, a queryset `update`, the admin, the
  importer, raw SQL) can change those facts without it. Polled like `access`; the process
  that made the change drops its caches at once (`bump_on_change(..., bumped_by_database=True)`).
- `throttle`: the failed-sign-in counters (accounts.throttle). Every failed sign-in bumps it
  with its counter write (after it, with Redis); a sign-in with a password this process has
  not verified reads the versions first, so the counter it checks is exactly the stored one,
  and a remembered password or a token checks them as the other families do.

A version is a new random value on every change (compared for equality, never ordered), so a
rolled-back change can never make an old cache look current again. An entry loaded while
a family was being dropped is not stored (each drop starts a new epoch, and an entry is
stored only under the epoch its load began in), so a slow reader cannot put pre-change data
back into a cache that was just emptied.

Cached model instances are shared between threads: callers copy them (`request_copy`) before
handing them to a request."""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from core import context
from core.prepared import server_prepared_cursor

ACCESS = "access"
RESOLUTION = "resolution"
THROTTLE = "throttle"
LIFECYCLE = "lifecycle"
FAMILIES = (ACCESS, RESOLUTION, THROTTLE, LIFECYCLE)

M = TypeVar("M", bound=Model)

_MISSING = object()
_UNSET = object()

_lock = threading.RLock()
_known: dict[str, Any] = {family: _UNSET for family in FAMILIES}
_epochs: dict[str, int] = {family: 0 for family in FAMILIES}
_stores: dict[str, list[Store]] = {family: [] for family in FAMILIES}
_checked_at = -1e18
# The request (id) each thread last checked the versions for: one check per request at most.
_thread = threading.local()


class Store:
    """A bounded LRU map in one family."""

    def __init__(self, family: str, name: str, size: int = 10_000):
        if family not in FAMILIES:
            raise ValueError(f"Unknown cache family {family!r}")
        self.family = family
        self.name = name
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        with _lock:
            _stores[family].append(self)

    def get(self, key: Any, default: Any = None) -> Any:
        with _lock:
            value = self._items.get(key, _MISSING)
            if value is _MISSING:
                return default
            self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any, epoch: int) -> None:
        """Store `value` if the family was not dropped since `epoch` (see `epoch()`)."""
        with _lock:
            if epoch != _epochs[self.family]:
                return
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_load(self, key: Any, load: Callable[[], Any], *, keep_none: bool = True) -> Any:
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        started = epoch(self.family)
        value = load()
        if value is not None or keep_none:
            self.put(key, value, started)
        return value

    def discard(self, key: Any) -> None:
        with _lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with _lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def request_copy(instance: M) -> M:
    """A copy of a cached model instance for one request, as `copy.copy` makes it (its own
    attributes, its own `_state` and related-object cache; field values shared), without
    `copy.copy`'s way through pickling's `__reduce_ex__` (0.9 against 6.5 µs per instance;
    an authenticated serving read copies three)."""
    clone = object.__new__(type(instance))
    attributes = instance.__dict__.copy()
    state = ModelState()
    state.__dict__.update(instance._state.__dict__)
    if "fields_cache" in state.__dict__:
        state.fields_cache = state.fields_cache.copy()
    attributes["_state"] = state
    clone.__dict__ = attributes
    return clone


def epoch(family: str) -> int:
    with _lock:
        return _epochs[family]


def _drop(family: str) -> None:
    with _lock:
        _epochs[family] += 1
        for store in _stores[family]:
            store.clear()


def clear_all() -> None:
    """Forget everything (tests: each test's database starts over)."""
    global _checked_at
    with _lock:
        for family in FAMILIES:
            _drop(family)
            _known[family] = _UNSET
        _checked_at = -1e18


@functools.cache
def poll_seconds() -> float:
    # Read once: every request asks up to four times, and a read through Django's lazy
    # settings object was 2% of a 64 KiB upload's server time (py-spy, 2026-12-07).
    return getattr(settings, "CUSTODY_CACHE_POLL_SECONDS", 0.5)


@receiver(setting_changed)
def _poll_seconds_changed(setting: str, **kwargs: Any) -> None:
    if setting == "CUSTODY_CACHE_POLL_SECONDS":
        poll_seconds.cache_clear()


def max_stale_seconds(cache_control: str | None) -> float | None:
    """How old an answer the request accepts, from its `Cache-Control: max-stale[=seconds]`
    (RFC 9111, 5.2.1.2): None (fresh, the default) without the directive or with a value
    that is not a whole number of seconds; a bare `max-stale` accepts any age, which
    `refresh_for_serving` bounds by the poll interval."""
    if not cache_control or "max-stale" not in cache_control.lower():
        return None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name.strip() != "max-stale":
            continue
        value = value.strip().strip('"')
        if not value:
            return float("inf")
        return float(value) if value.isascii() and value.isdigit() else None
    return None


def _read_versions() -> dict[str, Any]:
    with server_prepared_cursor() as cursor:
        cursor.execute("SELECT name, version FROM core_cacheversion")
        return dict(cursor.fetchall())


def refresh(*, force: bool = False) -> None:
    """Drop the caches of every family whose version changed. Reads the versions (one small
    query) when forced or when the last read began longer ago than the poll interval."""
    if checked_in_this_request():
        return  # at most once per request: a later call has nothing new to learn
    started = time.monotonic()
    if not force and started - _checked_at < poll_seconds():
        return
    _read(started)


def refresh_for_serving(cache_control: str | None) -> None:
    """Make the caches of a serving read (resolve, latest versions, an alias) as fresh as
    the request asks: exactly as fresh as the database when the request began (a forced
    read), unless its `Cache-Control` accepts staleness (`max_stale_seconds`). Then the
    versions are read only when the last read began longer ago than the seconds accepted or
    the poll interval, whichever is shorter, and the request's caches count as checked
    (`checked_in_this_request`) either way."""
    accepted = max_stale_seconds(cache_control)
    if accepted is None:
        refresh(force=True)
        return
    if checked_in_this_request():
        return
    started = time.monotonic()
    if started - _checked_at < min(accepted, poll_seconds()):
        _thread.read_for = context.current().request_id
        return
    _read(started)


def _read(started: float) -> None:
    if transaction.get_connection().in_atomic_block:
        # This connection may see its own uncommitted bumps: read alone, share nothing.
        _apply(_read_versions(), started)
    else:
        _read_begun_after_now(started)
    _thread.read_for = context.current().request_id


# Concurrent requests share one read of the versions, on one condition: it began after they
# asked. A read that began later sees every change committed before they asked, which is all
# "never stale after the change commits" needs; one already under way when they asked may not,
# so they wait for the next. Serving reads (resolve, latest versions, alias) under load then
# pay for a fraction of a round trip each.
_reads = threading.Condition(threading.Lock())
_reads_begun = 0  # reads begun in this process, numbered in order
_read_applied = 0  # the number of the newest read whose versions were applied
_reading = False


def _read_begun_after_now(started: float) -> None:
    global _reads_begun, _read_applied, _reading
    with _reads:
        wanted = _reads_begun + 1  # the first read to begin from now on
        while _read_applied < wanted:
            if not _reading:
                _reading = True
                _reads_begun += 1
                mine = _reads_begun
                break
            _reads.wait()
        else:
            return  # another thread's read, begun after this one asked, was applied
    applied = False
    try:
        _apply(_read_versions(), started)
        applied = True
    finally:
        with _reads:
            _reading = False
            if applied:
                _read_applied = mine
            # On failure the waiters read again (one begins it, the rest share it).
            _reads.notify_all()


def _apply(versions: dict[str, Any], started: float) -> None:
    global _checked_at
    with _lock:
        for family in FAMILIES:
            version = versions.get(family)
            if _known[family] is _UNSET or _known[family] != version:
                _drop(family)
                _known[family] = version
        _checked_at = max(_checked_at, started)


def checked_in_this_request() -> bool:
    """Whether this request's caches were checked as it asked: it read the versions itself
    (`refresh(force=True)` makes sure), so every cache is exactly as fresh as the database
    was when the request began; or it accepted answers up to some seconds old and the last
    read began no longer ago than that (`refresh_for_serving`)."""
    request_id = context.current().request_id
    return bool(request_id) and getattr(_thread, "read_for", None) == request_id


def bump(family: str) -> None:
    """Give `family` a new version in the current transaction: every process drops its
    caches of that family within the poll interval of the commit; this one drops them now
    and again at commit (a reader in another thread may have refilled them meanwhile)."""
    from core.models import CacheVersion

    if _bumped_in_this_transaction(family):
        # Other processes see only the committed value, and this one takes it at commit:
        # a second write would add a round trip and nothing else.
        with _lock:
            _drop(family)
        return
    value = secrets.randbits(62) + 1
    if not CacheVersion.objects.filter(name=family).update(version=value):
        CacheVersion.objects.update_or_create(name=family, defaults={"version": value})
    _seen(family, value)
    transaction.on_commit(functools.partial(_seen, family, value))


def _bumped_in_this_transaction(family: str) -> bool:
    """Whether the current transaction has bumped `family` already (its on-commit hook is
    there; a savepoint rolled back takes its hooks with it, and its write)."""
    current = transaction.get_connection()
    return current.in_atomic_block and any(
        isinstance(hook, functools.partial) and hook.func is _seen and hook.args[0] == family
        for _, hook, *_ in current.run_on_commit
    )


def _seen(family: str, version: int) -> None:
    # If the change rolls back, the next check reads the old value, which differs: dropped.
    with _lock:
        _drop(family)
        _known[family] = version


def bump_on_delete(model: type[Model], family: str) -> None:
    """Bump `family` whenever a `model` row is deleted (any path), in the same transaction:
    for caches that hold facts about a row that never change while it exists."""
    post_delete.connect(
        lambda sender, instance, **kwargs: bump(family),
        sender=model,
        weak=False,
        dispatch_uid=f"custody-cache-{family}-{model._meta.label}-delete",
    )


def bump_on_change(
    model: type[Model],
    family: str,
    *,
    fields: Iterable[str] | None = None,
    on_create: bool = True,
    bumped_by_database: bool = False,
) -> None:
    """Bump `family` whenever a `model` row is saved or deleted (any path: services, the
    admin, management commands), in the same transaction. With `fields`, a save that names
    its `update_fields` bumps only when one of them is among `fields`. With
    `bumped_by_database`, the database bumps `family` itself (a trigger, which sees every
    path, raw SQL included): such a save or delete only lets this process drop its caches
    at once rather than at its next poll."""
    watched = frozenset(fields) if fields is not None else None
    act = changed_in_database if bumped_by_database else bump

    def saved(sender, instance, created, raw=False, update_fields=None, **kwargs):
        if raw or (created and not on_create):
            return
        if watched is not None and update_fields is not None and not watched & set(update_fields):
            return
        act(family)

    def deleted(sender, instance, **kwargs):
        act(family)

    uid = f"custody-cache-{family}-{model._meta.label}"
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid + "-save")
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid + "-delete")


def changed_in_database(family: str) -> None:
    """The database has given `family` a new version in the current transaction (a
    trigger): drop this process's caches of it now and again at commit, as `bump` does. The
    new value is learnt at the next poll (which drops them once more, harmlessly)."""
    _drop(family)
    transaction.on_commit(functools.partial(_drop, family))


def bump_on_m2m_change(through: type[Model], family: str) -> None:
    def changed(sender, action, **kwargs):
        if action in ("post_add", "post_remove", "post_clear"):
            bump(family)

    m2m_changed.connect(
        changed,
        sender=through,
        weak=False,
        dispatch_uid=f"custody-cache-{family}-{through._meta.label}-m2m",
    )

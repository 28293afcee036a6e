"""Concurrent requests share one read of the cache versions only if it began after they asked
(core.process_cache.refresh): a read already under way may predate a change that committed
before they asked, and "never stale after the change commits" would break.

Threads of one process, on a committed database (each thread its own connection, as
gunicorn's threads have). The other process's change is a raw UPDATE of the version row,
which sends this process no signal: only a read can see it."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from core import process_cache
from core.models import CacheVersion

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10  # seconds; generous, nothing here should take more than milliseconds


class _CountedCondition(threading.Condition):
    """The module's condition, counting the waits begun (under its lock) so that a test can
    release a held read only once the threads it means to test are waiting on it."""

    waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def _until_waiting(count: int) -> None:
    deadline = time.monotonic() + WAIT
    while process_cache._reads.waits < count:
        assert time.monotonic() < deadline, f"{process_cache._reads.waits} of {count} waiting"
        time.sleep(0.005)


@pytest.fixture
def slow_reads(monkeypatch):
    """Every read of the versions is counted; the first one taken after `hold` holds its
    result (read from the database already) until `release`."""
    real = process_cache._read_versions
    state = {"reads": 0, "hold": False}
    read_done = threading.Event()
    release = threading.Event()

    def read():
        versions = real()
        state["reads"] += 1
        if state["hold"]:
            state["hold"] = False
            read_done.set()
            assert release.wait(WAIT)
        return versions

    monkeypatch.setattr(process_cache, "_read_versions", read)
    monkeypatch.setattr(process_cache, "_reads", _CountedCondition(threading.Lock()))
    process_cache.clear_all()
    for family in process_cache.FAMILIES:
        CacheVersion.objects.update_or_create(name=family, defaults={"version": 1})
    process_cache.refresh(force=True)
    yield state, read_done, release
    release.set()
    process_cache.clear_all()


def _in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()  # each thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _other_process_commits_a_change() -> int:
    CacheVersion.objects.filter(name=process_cache.RESOLUTION).update(version=2)
    return 2


def test_a_read_under_way_when_a_request_asks_does_not_answer_it(slow_reads):
    state, read_done, release = slow_reads
    assert process_cache._known[process_cache.RESOLUTION] == 1
    state["hold"] = True
    early = _in_thread(lambda: process_cache.refresh(force=True))
    assert read_done.wait(WAIT)  # its read saw version 1 and is still under way

    new = _other_process_commits_a_change()
    late = _in_thread(lambda: process_cache.refresh(force=True))  # asks after the commit
    _until_waiting(1)
    release.set()
    early.join(WAIT)
    late.join(WAIT)

    assert not early.is_alive() and not late.is_alive()
    assert process_cache._known[process_cache.RESOLUTION] == new
    assert state["reads"] == 3  # the fixture's, the early one's, and one begun for the late one


def test_requests_that_ask_during_a_read_share_the_next_one(slow_reads):
    state, read_done, release = slow_reads
    state["hold"] = True
    early = _in_thread(lambda: process_cache.refresh(force=True))
    assert read_done.wait(WAIT)

    new = _other_process_commits_a_change()
    late = [_in_thread(lambda: process_cache.refresh(force=True)) for _ in range(6)]
    _until_waiting(6)
    release.set()
    for thread in [early, *late]:
        thread.join(WAIT)

    assert not any(thread.is_alive() for thread in [early, *late])
    assert process_cache._known[process_cache.RESOLUTION] == new
    # Six requests asked while one read was under way: they needed one more, not six.
    assert state["reads"] == 3


def test_a_failed_read_leaves_the_waiters_to_read_for_themselves(slow_reads, monkeypatch):
    state, read_done, release = slow_reads
    counted = process_cache._read_versions
    failures = {"left": 1}

    def failing_once():
        versions = counted()
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the database went away mid-read")
        return versions

    monkeypatch.setattr(process_cache, "_read_versions", failing_once)
    state["hold"] = True
    errors: list[BaseException] = []

    def early_read():
        try:
            process_cache.refresh(force=True)
        except ConnectionError as exc:
            errors.append(exc)

    early = _in_thread(early_read)
    assert read_done.wait(WAIT)
    new = _other_process_commits_a_change()
    late = _in_thread(lambda: process_cache.refresh(force=True))
    _until_waiting(1)
    release.set()
    early.join(WAIT)
    late.join(WAIT)

    assert len(errors) == 1  # the reader meets its own failure
    assert not late.is_alive()
    assert process_cache._known[process_cache.RESOLUTION] == new  # the waiter read for itself

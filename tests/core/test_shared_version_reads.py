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


def _refresh() -> None:
    process_cache.refresh(force=True)


def _ask_during_a_held_read(slow_reads, early_read, late: int) -> int:
    """`early_read` begins a read (seeing version 1) that is held; meanwhile another process
    commits version 2, and `late` requests ask for fresh versions; once they all wait, the
    held read ends. Answers the new version, once every thread is done."""
    state, read_done, release = slow_reads
    state["hold"] = True
    early = _in_thread(early_read)
    assert read_done.wait(WAIT)  # its read saw version 1 and is still under way
    new = _other_process_commits_a_change()
    asking = [_in_thread(_refresh) for _ in range(late)]  # they ask after the commit
    _until_waiting(late)
    release.set()
    for thread in [early, *asking]:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in [early, *asking])
    return new


def test_a_read_under_way_when_a_request_asks_does_not_answer_it(slow_reads):
    assert process_cache._known[process_cache.RESOLUTION] == 1
    new = _ask_during_a_held_read(slow_reads, _refresh, late=1)

    assert process_cache._known[process_cache.RESOLUTION] == new
    # The fixture's read, the early one's, and one begun for the late request.
    assert slow_reads[0]["reads"] == 3


def test_requests_that_ask_during_a_read_share_the_next_one(slow_reads):
    new = _ask_during_a_held_read(slow_reads, _refresh, late=6)

    assert process_cache._known[process_cache.RESOLUTION] == new
    # Six requests asked while one read was under way: they needed one more, not six.
    assert slow_reads[0]["reads"] == 3


def test_a_failed_read_leaves_its_waiters_to_read_again(slow_reads, monkeypatch):
    counted = process_cache._read_versions
    failures = {"left": 1}

    def failing_once():
        versions = counted()
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the database went away mid-read")
        return versions

    monkeypatch.setattr(process_cache, "_read_versions", failing_once)
    errors: list[BaseException] = []

    def early_read():
        try:
            _refresh()
        except ConnectionError as exc:
            errors.append(exc)

    new = _ask_during_a_held_read(slow_reads, early_read, late=1)

    assert len(errors) == 1  # the reader meets its own failure
    assert process_cache._known[process_cache.RESOLUTION] == new  # the waiter read again

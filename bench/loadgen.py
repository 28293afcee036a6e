"""Bounded, closed-loop load: N threads, each with its own Client, each running `op` until
the deadline or the shared operation budget is spent. Every answer is checked by `op`.

`op(tid, seq, client)` performs one operation (one or more HTTP requests) and returns
`units` (e.g. metrics logged, bytes moved) or raises `OpError` with a reason. Latency is
measured around the whole operation."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from httpc import Client, HttpError


class OpError(Exception):
    pass


class EndpointMissing(Exception):
    """The server does not have this endpoint: the scenario is n/a, not a failure."""


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


@dataclass
class LoadResult:
    ops: int = 0
    errors: int = 0
    units: float = 0.0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    error_kinds: Counter = field(default_factory=Counter)
    warmup_errors: int = 0
    reconnects: int = 0
    connects: int = 0
    stopped_by: str = ""

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ok = self.ops - self.errors
        return {
            "ops": self.ops,
            "ok": ok,
            # measured-window errors plus warm-up errors: any error flags the measurement
            "errors": self.errors + self.warmup_errors,
            "warmup_errors": self.warmup_errors,
            "wall_s": round(self.wall, 3),
            "ops_per_s": ok / self.wall if self.wall else 0.0,
            "units_per_s": self.units / self.wall if self.wall else 0.0,
            "units": self.units,
            "p50_ms": _ms(percentile(lat, 0.50)),
            "p95_ms": _ms(percentile(lat, 0.95)),
            "p99_ms": _ms(percentile(lat, 0.99)),
            "max_ms": _ms(lat[-1] if lat else None),
            "mean_ms": _ms(sum(lat) / len(lat) if lat else None),
            "connects": self.connects,
            "reconnects": self.reconnects,
            "error_kinds": dict(self.error_kinds.most_common(5)),
            "error_samples": self.error_samples[:5],
            "stopped_by": self.stopped_by,
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000.0


def run_load(
    make_client: Callable[[], Client],
    op: Callable[[int, int, Client], float],
    *,
    threads: int,
    duration: float,
    max_ops: int,
    warmup_ops: int = 0,
    hard_timeout: float | None = None,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> LoadResult:
    """Run `op` from `threads` threads until `duration` seconds have passed or `max_ops`
    operations were started. `warmup_ops` operations per thread run first, untimed, to open
    connections and warm the server's caches; warm-up errors count as errors."""
    result = LoadResult()
    lock = threading.Lock()
    seq = itertools.count()
    budget = itertools.count()
    warm_done = threading.Barrier(threads + 1)
    go = threading.Barrier(threads + 1)
    state = {"deadline": 0.0, "missing": None}
    per_thread_lat: list[list[float]] = [[] for _ in range(threads)]
    clients: list[Client | None] = [None] * threads

    def record_error(reason: str, warm: bool = False) -> None:
        with lock:
            if warm:
                result.warmup_errors += 1
            else:
                result.errors += 1
            result.error_kinds[reason.split(":")[0][:60]] += 1
            if len(result.error_samples) < 20:
                result.error_samples.append(reason[:300])

    def worker(tid: int) -> None:
        client = make_client()
        clients[tid] = client
        try:
            for _ in range(warmup_ops):
                try:
                    op(tid, next(seq), client)
                except EndpointMissing as exc:
                    state["missing"] = str(exc)
                    break
                except (OpError, HttpError) as exc:
                    record_error(f"warmup {exc}", warm=True)
        finally:
            try:
                warm_done.wait(timeout=300)
                go.wait(timeout=300)
            except threading.BrokenBarrierError:
                return
        lat = per_thread_lat[tid]
        n_ops = 0
        units = 0.0
        while state["missing"] is None:
            if time.perf_counter() >= state["deadline"]:
                break
            if next(budget) >= max_ops:
                break
            t0 = time.perf_counter()
            try:
                units += op(tid, next(seq), client)
                lat.append(time.perf_counter() - t0)
            except EndpointMissing as exc:
                state["missing"] = str(exc)
                break
            except (OpError, HttpError) as exc:
                # failed operations are counted, not mixed into the latency percentiles
                record_error(str(exc))
            except Exception as exc:  # a bug in the check itself must not hang the bench
                record_error(f"{type(exc).__name__}: {exc}")
            n_ops += 1
        with lock:
            result.ops += n_ops
            result.units += units

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    warm_done.wait(timeout=600)
    if on_start is not None:
        on_start()
    start = time.perf_counter()
    state["deadline"] = start + duration
    go.wait(timeout=60)
    limit = hard_timeout if hard_timeout is not None else duration + 180
    for w in workers:
        w.join(timeout=max(0.1, start + limit - time.perf_counter()))
    result.wall = time.perf_counter() - start
    if on_end is not None:
        on_end()
    if any(w.is_alive() for w in workers):
        result.stopped_by = "hard-timeout"
        state["deadline"] = 0.0
    elif result.ops >= max_ops:
        result.stopped_by = "count"
    else:
        result.stopped_by = "time"
    for lat in per_thread_lat:
        result.latencies.extend(lat)
    for c in clients:
        if c is not None:
            result.connects += c.connects
            result.reconnects += c.reconnects
            c.close()
    if state["missing"] is not None:
        raise EndpointMissing(state["missing"])
    return result

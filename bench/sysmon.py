"""Where the time goes: CPU seconds used by the server's process tree, by PostgreSQL and by the
load generator over one measured window, the machine's idle share, and PostgreSQL's own
counters for the database under test (transactions, rows) per operation.

CPU of a process tree = sum over the live tree of utime+stime+cutime+cstime (from
/proc/<pid>/stat). A child that exits moves its time into its parent's cutime/cstime, so the
difference between two readings is right even when processes come and go (PostgreSQL
backends, gunicorn worker restarts)."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds including reaped children)"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    rest = raw[raw.rindex(")") + 2 :].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLK_TCK


def tree_cpu(root_pid: int) -> float:
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        st = _read_stat(pid)
        if st is None:
            continue
        ppid, c = st
        cpu[pid] = c
        children.setdefault(ppid, []).append(pid)
    total = 0.0
    stack = [root_pid]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all cores, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in fields[:8]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals)
    return (total - idle) / CLK_TCK, total / CLK_TCK


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class Snapshot:
    t: float
    server: float
    postgres: float
    client: float
    busy: float
    total: float
    db: dict[str, int]


class Monitor:
    def __init__(self, postmaster_pid: int | None, db_stats):
        self.postmaster_pid = postmaster_pid
        self.db_stats = db_stats  # callable(dbname) -> dict of counters, or None

    def snapshot(self, server_pid: int | None, dbname: str | None) -> Snapshot:
        busy, total = machine_cpu()
        return Snapshot(
            t=time.perf_counter(),
            server=tree_cpu(server_pid) if server_pid else 0.0,
            postgres=tree_cpu(self.postmaster_pid) if self.postmaster_pid else 0.0,
            client=self_cpu(),
            busy=busy,
            total=total,
            db=self.db_stats(dbname) if (self.db_stats and dbname) else {},
        )

    def settle_db_stats(self) -> None:
        # PostgreSQL 15 backends flush their statistics at most once a second; wait for it
        # so the per-operation transaction counts cover the whole window.
        time.sleep(1.1)

    @staticmethod
    def delta(a: Snapshot, b: Snapshot, ops: int) -> dict[str, Any]:
        wall = b.t - a.t
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {
            "window_s": round(wall, 3),
            # CPU use as a share of ONE core (100% = one core busy the whole window)
            "server_cpu_pct": 100.0 * (b.server - a.server) / wall if wall else None,
            "postgres_cpu_pct": 100.0 * (b.postgres - a.postgres) / wall if wall else None,
            "client_cpu_pct": 100.0 * (b.client - a.client) / wall if wall else None,
            # whole machine, share of all cores
            "machine_busy_pct": 100.0 * (b.busy - a.busy) / (b.total - a.total)
            if b.total > a.total
            else None,
            "cores": cores,
        }
        if out["machine_busy_pct"] is not None and wall:
            ours = (b.server - a.server) + (b.postgres - a.postgres) + (b.client - a.client)
            busy = b.busy - a.busy
            # CPU used by anything else on the machine (other users' tests, the idle server,
            # kernel threads): a sanity check that the measurement had the machine to itself.
            out["other_cpu_pct"] = 100.0 * max(0.0, busy - ours) / wall
        if ops:
            out["server_cpu_ms_per_op"] = 1000.0 * (b.server - a.server) / ops
            out["postgres_cpu_ms_per_op"] = 1000.0 * (b.postgres - a.postgres) / ops
            out["client_cpu_ms_per_op"] = 1000.0 * (b.client - a.client) / ops
        if a.db and b.db:
            d = {k: b.db[k] - a.db.get(k, 0) for k in b.db}
            out["db"] = d
            if ops:
                out["db_xact_per_op"] = (d.get("xact_commit", 0) + d.get("xact_rollback", 0)) / ops
                out["db_rows_written_per_op"] = (
                    d.get("tup_inserted", 0) + d.get("tup_updated", 0) + d.get("tup_deleted", 0)
                ) / ops
                out["db_rows_read_per_op"] = (d.get("tup_returned", 0)) / ops
        return out

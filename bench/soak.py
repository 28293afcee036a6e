#!/usr/bin/env python
"""Soak: a realistic mix held for a long time at half the measured capacity.

    flock /tmp/custody-bench.lock .venv/bin/python bench/soak.py            # 10 minutes
    .venv/bin/python bench/soak.py --minutes 1 --capacity-seconds 10        # smoke run

Starts Custody as deployments run it (gunicorn with config/gunicorn.conf.py, 4 workers x 4
threads, PostgreSQL database `custody_soak`, embedded tasks and periodic schedule, JSON
request log), then:

1. capacity: the mix in a closed loop with 8 client threads for --capacity-seconds; the
   requests per second it reaches is the capacity;
2. soak: the same mix *open-loop* at --load (0.5) of that rate for --minutes: requests are
   issued on a fixed timetable whatever the answers, and a request's latency counts from
   when it was due (so a stalled server shows as latency, not as a slower client);
3. reports p50/p99 per minute and per operation, errors, and the resident memory of the
   gunicorn process tree (master + workers) at the start, every minute, and at the end.

The mix (weights): log-batch of 10 metrics to one of 20 runs (40), registry reads:
get-latest-versions and get by alias (25), on 8 models, resolve `models:/soak-N/Production` through
/api/v1/resolve (25), and a promotion (10): register a new version, move it to Staging, then
to Production (three requests, timed together; the version before is archived by the
outbox). Results go to bench/results/soak-<UTC time>/ (results.md, results.json, server log).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from httpc import Client, HttpError  # noqa: E402
from loadgen import percentile  # noqa: E402
from sysmon import loadavg  # noqa: E402

API = "/api/2.0/mlflow"
MODELS = [f"soak-{i}" for i in range(8)]
WEIGHTS = {"log_batch": 40, "registry_read": 25, "resolve": 25, "promotion": 10}


def tree_rss_mib(root_pid: int) -> float:
    """Resident memory of a process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


class Mix:
    """The operations, with what they need set up once."""

    def __init__(self, client: Client):
        c = client
        exp = self._ok(c.post(f"{API}/experiments/create", {"name": "soak"}))["experiment_id"]
        tags = [
            {"key": k, "value": "soak"} for k in ("dataset_version", "git_commit", "triggered_by")
        ]
        self.runs = []
        for i in range(20):
            body = {
                "experiment_id": exp,
                "run_name": f"r{i}",
                "start_time": int(time.time() * 1000),
                "tags": tags,
            }
            self.runs.append(self._ok(c.post(f"{API}/runs/create", body))["run"]["info"]["run_id"])
        self.source = f"runs:/{self.runs[0]}/model"
        self.locks = {model: threading.Lock() for model in MODELS}
        self.step = 0
        self.step_lock = threading.Lock()
        for model in MODELS:
            self._ok(c.post(f"{API}/registered-models/create", {"name": model}))
            version = self.promote(c, model)
            self._ok(
                c.post(
                    f"{API}/registered-models/alias",
                    {"name": model, "alias": "champion", "version": version},
                )
            )

    @staticmethod
    def _ok(response):
        if response.status != 200:
            raise HttpError(f"{response.status}: {response.body[:300]!r}")
        return response.json()

    def log_batch(self, c: Client) -> None:
        with self.step_lock:
            self.step += 1
            step = self.step
        now = int(time.time() * 1000)
        metrics = [
            {"key": f"m{k}", "value": random.random(), "timestamp": now, "step": step}
            for k in range(10)
        ]
        self._ok(
            c.post(
                f"{API}/runs/log-batch", {"run_id": random.choice(self.runs), "metrics": metrics}
            )
        )

    def registry_read(self, c: Client) -> None:
        if random.random() < 0.5:
            self._ok(
                c.post(
                    f"{API}/registered-models/get-latest-versions",
                    {"name": random.choice(MODELS), "stages": ["Production"]},
                )
            )
        else:
            self._ok(
                c.get(
                    f"{API}/registered-models/alias",
                    {"name": random.choice(MODELS), "alias": "champion"},
                )
            )

    def resolve(self, c: Client) -> None:
        self._ok(c.get("/api/v1/resolve", {"uri": f"models:/{random.choice(MODELS)}/Production"}))

    def promotion(self, c: Client) -> None:
        # One promotion at a time per model, as a team would promote; racing ones are the
        # scale-out test's business (tests/ops).
        model = random.choice(MODELS)
        with self.locks[model]:
            self.promote(c, model)

    def promote(self, c: Client, model: str) -> str:
        created = self._ok(
            c.post(f"{API}/model-versions/create", {"name": model, "source": self.source})
        )
        version = created["model_version"]["version"]
        for stage in ("Staging", "Production"):
            body = {
                "name": model,
                "version": version,
                "stage": stage,
                "archive_existing_versions": False,
            }
            self._ok(c.post(f"{API}/model-versions/transition-stage", body))
        return version


def pick(rng: random.Random) -> str:
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


def capacity(mix: Mix, port: int, auth, seconds: float, threads: int = 8) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        c, rng = Client("127.0.0.1", port, auth=auth), random.Random(i)
        while time.monotonic() < stop:
            try:
                getattr(mix, pick(rng))(c)
                done[i] += 1
            except HttpError:
                pass

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / (time.monotonic() - started)


def soak(mix: Mix, port: int, auth, rate: float, seconds: float, server_pid: int, log) -> dict:
    """Open loop: a timetable of `rate` operations per second, served by a pool of threads."""
    due: queue.Queue = queue.Queue()
    samples: list[tuple[float, str, float, str | None]] = []  # (due offset, op, latency, error)
    lock = threading.Lock()
    start = time.monotonic() + 1.0
    memory = [(0.0, tree_rss_mib(server_pid))]

    def worker(i: int) -> None:
        c = Client("127.0.0.1", port, auth=auth)
        while True:
            item = due.get()
            if item is None:
                return
            at, op = item
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            error = None
            try:
                getattr(mix, op)(c)
            except HttpError as exc:
                error = str(exc)[:200]
            latency = time.monotonic() - at
            with lock:
                samples.append((at - start, op, latency, error))

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(32)]
    for t in pool:
        t.start()
    rng = random.Random(7)
    n = int(rate * seconds)
    next_minute = 60.0
    for k in range(n):
        at = start + k / rate
        while at - time.monotonic() > 0.5:
            time.sleep(0.25)
        if at - start >= next_minute:
            memory.append((round(at - start), tree_rss_mib(server_pid)))
            log(
                f"  {next_minute / 60:.0f} min: {len(samples)} done, RSS {memory[-1][1]} MiB, load {loadavg()}"
            )
            next_minute += 60.0
        due.put((at, pick(rng)))
    for _ in pool:
        due.put(None)
    for t in pool:
        t.join(timeout=120)
    memory.append((round(time.monotonic() - start), tree_rss_mib(server_pid)))
    return {"samples": samples, "memory": memory}


def summarize(samples, minutes: int) -> dict:
    def stats(rows):
        lat = sorted(r[2] for r in rows)
        return {
            "n": len(rows),
            "errors": sum(1 for r in rows if r[3]),
            "p50_ms": round(percentile(lat, 0.50) * 1000, 1) if lat else None,
            "p99_ms": round(percentile(lat, 0.99) * 1000, 1) if lat else None,
        }

    per_minute = [
        stats([r for r in samples if m * 60 <= r[0] < (m + 1) * 60]) for m in range(minutes)
    ]
    per_op = {op: stats([r for r in samples if r[1] == op]) for op in WEIGHTS}
    errors = sorted({r[3] for r in samples if r[3]})[:10]
    return {
        "all": stats(samples),
        "per_minute": per_minute,
        "per_op": per_op,
        "error_samples": errors,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--load", type=float, default=0.5, help="share of the measured capacity")
    p.add_argument("--capacity-seconds", type=float, default=30)
    args = p.parse_args()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = servers.BENCH_DIR / "results" / f"soak-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "soak.log", "a")  # noqa: SIM115

    def log(msg: str) -> None:
        line = f"{datetime.now(UTC).strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")

    user, password = "soak", secrets.token_hex(12)
    server = servers.start_custody(
        out,
        servers.python_of_project(),
        log,
        user,
        password,
        "admin",
        dbname="custody_soak",
        production_config=True,
    )
    try:
        auth = (user, password)
        mix = Mix(Client("127.0.0.1", server.port, auth=auth))
        log(f"capacity: the mix, closed loop, 8 threads, {args.capacity_seconds:.0f} s")
        cap = capacity(mix, server.port, auth, args.capacity_seconds)
        rate = cap * args.load
        log(f"capacity {cap:.1f} ops/s; soak at {rate:.1f} ops/s for {args.minutes} min")
        result = soak(mix, server.port, auth, rate, args.minutes * 60, server.pid, log)
        summary = summarize(result["samples"], args.minutes)
        report = {
            "started": stamp,
            "capacity_ops_per_s": round(cap, 1),
            "rate_ops_per_s": round(rate, 1),
            "minutes": args.minutes,
            "weights": WEIGHTS,
            "memory_mib": result["memory"],
            "loadavg_end": loadavg(),
            **summary,
        }
        (out / "results.json").write_text(json.dumps(report, indent=2))
        md = render(report)
        (out / "results.md").write_text(md)
        print(md)
        log(f"results in {out}")
    finally:
        server.stop()
        servers.drop_database("custody_soak")


def render(r: dict) -> str:
    lines = [
        f"# Soak {r['started']}",
        "",
        f"Capacity (closed loop, 8 threads): {r['capacity_ops_per_s']} ops/s; soak at "
        f"{r['rate_ops_per_s']} ops/s for {r['minutes']} min (open loop). "
        f"All: {r['all']['n']} ops, {r['all']['errors']} errors, p50 {r['all']['p50_ms']} ms, "
        f"p99 {r['all']['p99_ms']} ms.",
        "",
        "| minute | ops | errors | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for i, m in enumerate(r["per_minute"]):
        lines.append(f"| {i + 1} | {m['n']} | {m['errors']} | {m['p50_ms']} | {m['p99_ms']} |")
    lines += ["", "| operation | ops | errors | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for op, m in r["per_op"].items():
        lines.append(f"| {op} | {m['n']} | {m['errors']} | {m['p50_ms']} | {m['p99_ms']} |")
    mem = r["memory_mib"]
    lines += [
        "",
        "Server memory (gunicorn master + workers, RSS MiB) by second: "
        + ", ".join(f"{t}s: {v}" for t, v in mem),
        f"Start {mem[0][1]} MiB, end {mem[-1][1]} MiB ({mem[-1][1] - mem[0][1]:+.1f}).",
    ]
    if r["error_samples"]:
        lines += ["", "Errors seen:", *(f"- {e}" for e in r["error_samples"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

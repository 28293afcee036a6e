"""The workloads. Each scenario runs against one server (a Ctx) and records table rows and
per-measurement details in the Recorder. Bodies are the ones the MLflow 3.18 client sends
(see /work/shared/reference/mlflow-protocol.md §2 and §6)."""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from httpc import Client, HttpError, Response
from loadgen import EndpointMissing, OpError, percentile, run_load
from sysmon import Monitor

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"

HIGHER = "higher"
LOWER = "lower"


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    scenario: str
    metric: str
    unit: str
    better: str
    goal: float | None = None  # required speed-up of Custody over MLflow
    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # target -> "n/a: ..." / "errors: N"


class Recorder:
    def __init__(self):
        self.rows: OrderedDict[tuple[str, str], Row] = OrderedDict()
        # target -> /health requests/s (8 threads, keep-alive): the floor every keep-alive
        # 8-thread requests/s row is compared with (its "share of the floor").
        self.floor: dict[str, float] = {}
        # (target, scenario) -> (share, median floor slice) from alternating slices right
        # after the scenario (`Ctx.share_in_slices`): the machine's speed drifts within seconds
        # on a shared machine, so each share is taken against the floor at the same moments.
        self.floor_beside: dict[tuple[str, str], tuple[float, float]] = {}
        self.details: list[dict[str, Any]] = []
        self.info: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        # scenario -> target -> a slice of that measurement again (`Ctx.measure(paired=True)`),
        # and scenario -> (Custody/MLflow, the four pairs' ratios) from `paired_slices`.
        self.pairable: dict[str, dict[str, Callable[[float], dict[str, Any]]]] = {}
        self.paired: dict[str, tuple[float, list[float]] | None] = {}

    def row(self, scenario: str, metric: str, unit: str, better: str, goal=None) -> Row:
        key = (scenario, metric)
        if key not in self.rows:
            self.rows[key] = Row(scenario, metric, unit, better, goal)
        return self.rows[key]

    def set(self, scenario, metric, unit, better, target, value, *, goal=None, note=None):
        r = self.row(scenario, metric, unit, better, goal)
        r.values[target] = value
        if note:
            r.notes[target] = note

    def na(self, scenario, metric, unit, better, target, reason, *, goal=None):
        r = self.row(scenario, metric, unit, better, goal)
        r.values[target] = None
        r.notes[target] = f"n/a: {reason}"


# ---------------------------------------------------------------------------------------------
# Context


@dataclass
class Opts:
    quick: bool
    sizes: list[int]
    load_s: float  # duration of each throughput measurement
    reg_s: float
    small_files: int
    large_mib: int
    large_reps: int
    tag_reps: int
    sorted_reps: int
    allpages_reps: int
    reg_ops: int
    seed_threads: int = 8
    search_budget_s: float = 120.0


@dataclass
class Ctx:
    target: str
    server: Any
    opts: Opts
    rec: Recorder
    monitor: Monitor
    dbstats: Any
    log: Callable[[str], None]
    auth: tuple[str, str] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    profile_dir: Any = None  # Path when --profile is on

    def client(self, keepalive: bool = True) -> Client:
        return Client("127.0.0.1", self.server.port, keepalive=keepalive, auth=self.auth)

    def measure(
        self,
        scenario: str,
        label: str,
        op,
        *,
        threads: int,
        duration: float,
        max_ops: int,
        keepalive: bool = True,
        warmup_ops: int = 2,
        hard_timeout: float | None = None,
        profile: bool = False,
        paired: bool = False,
    ) -> dict[str, Any]:
        """With `paired`, the measurement is kept to be run again in slices alternating with
        the other server's (`paired_slices`), for its Custody/MLflow ratio."""
        snaps: dict[str, Any] = {}
        pid, db = self.server.pid, self.server.dbname

        def on_start():
            snaps["a"] = self.monitor.snapshot(pid, db)

        def on_end():
            snaps["b"] = self.monitor.snapshot(pid, None)

        res = run_load(
            lambda: self.client(keepalive),
            op,
            threads=threads,
            duration=duration,
            max_ops=max_ops,
            warmup_ops=warmup_ops,
            hard_timeout=hard_timeout,
            on_start=on_start,
            on_end=on_end,
        )
        if self.dbstats is not None:
            self.monitor.settle_db_stats()
            snaps["b"].db = self.dbstats(db)
        summ = res.summary()
        summ["resources"] = Monitor.delta(snaps["a"], snaps["b"], res.ops)
        summ["threads"] = threads
        summ["keepalive"] = keepalive
        self.rec.details.append(
            {"scenario": scenario, "target": self.target, "label": label, **summ}
        )
        r = summ["resources"]
        self.log(
            f"  {self.target:7s} {label:44s} ops={summ['ok']:>6} err={summ['errors']:<3} "
            f"{summ['ops_per_s']:9.1f} op/s p50={_f(summ['p50_ms'])}ms p99={_f(summ['p99_ms'])}ms "
            f"| cpu srv={_f(r['server_cpu_pct'], 0)}% pg={_f(r['postgres_cpu_pct'], 0)}% "
            f"cli={_f(r['client_cpu_pct'], 0)}% machine={_f(r['machine_busy_pct'], 0)}%"
        )
        if summ["errors"]:
            self.log(f"    errors: {summ['error_kinds']} e.g. {summ['error_samples'][:2]}")
        if profile and self.profile_dir is not None and summ["ok"]:
            self.profile_pass(label, op, threads=threads, keepalive=keepalive)
        if keepalive and scenario != FLOOR_SCENARIO and scenario.endswith(", 8 thr, keep-alive"):
            self.share_in_slices(scenario, op, threads=threads, duration=duration, max_ops=max_ops)
        if paired and summ.get("ok") and not summ["errors"]:

            def again(seconds: float) -> dict[str, Any]:
                return run_load(
                    lambda: self.client(keepalive),
                    op,
                    threads=threads,
                    duration=seconds,
                    max_ops=max_ops,
                    warmup_ops=2,
                ).summary()

            self.rec.pairable.setdefault(scenario, {})[self.target] = again
        return summ

    def share_in_slices(
        self, scenario: str, op, *, threads: int, duration: float, max_ops: int
    ) -> None:
        """`op` and /health on the same server and threads in alternating slices, in the
        order floor, op, op, floor, floor, op, op, floor (each `duration` / 8): four pairs of
        neighbouring slices, each pair's ratio taken at one moment of a machine whose speed
        drifts within seconds, and the share is their median (one slice that met a hiccup
        does not move it). The floor recorded beside it is the median of the floor slices."""

        def one_slice(kind: str) -> dict[str, Any]:
            return run_load(
                lambda: self.client(True),
                op_health if kind == "floor" else op,
                threads=threads,
                duration=duration / 8,
                max_ops=2_000_000 if kind == "floor" else max_ops,
                warmup_ops=2,
            ).summary()

        sliced = rates_in_slices(one_slice, "floor", "op")
        if isinstance(sliced, str):
            self.log(f"  {self.target:7s}   share slices dropped: a {sliced} slice failed")
            return
        floors, ops = sliced
        share, ratios = median_ratio(ops, floors)
        floor_rate = sum(sorted(floors)[1:3]) / 2
        self.rec.floor_beside[(self.target, scenario)] = (share, floor_rate)
        self.log(
            f"  {self.target:7s} {'  share in slices beside /health':44s} {100 * share:.0f}% "
            f"(pairs {', '.join(f'{100 * r:.0f}%' for r in ratios)}; floor slices "
            f"{', '.join(f'{r:.0f}' for r in floors)})"
        )

    def profile_pass(self, label: str, op, *, threads: int, keepalive: bool) -> None:
        import pyspy_profile as prof

        secs = max(4.0, min(8.0, self.opts.load_s))
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{self.target}-{label}").strip("-")
        raw = self.profile_dir / f"profile-{slug}.raw"
        holder = {}

        def on_start():
            holder["p"] = prof.start(self.server.pid, secs, raw)

        try:
            run_load(
                lambda: self.client(keepalive),
                op,
                threads=threads,
                duration=secs,
                max_ops=1_000_000,
                warmup_ops=0,
                on_start=on_start,
            )
        except EndpointMissing:
            pass
        p = holder.get("p")
        if p is not None:
            try:
                p.wait(timeout=60)
            except Exception:
                p.kill()
        summary = prof.summarize(raw)
        (self.profile_dir / f"profile-{slug}.txt").write_text(prof.render(summary))
        self.rec.profiles.append({"target": self.target, "label": label, **summary})
        pk = ", ".join(f"{n} {v:.0f}%" for n, v in summary.get("self_by_package", [])[:6])
        self.log(f"    profile ({summary.get('samples', 0)} samples): {pk}")


def _f(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


NOISY_OTHER_CPU_PCT = 30.0


def err_note(summ: dict[str, Any]) -> str | None:
    notes = []
    if summ.get("errors"):
        notes.append(f"errors: {summ['errors']}, ok: {summ['ok']}")
    res = summ.get("resources") or {}
    other = res.get("other_cpu_pct")
    # CPU accounting has 10 ms ticks: only judge windows of a second or more.
    if other is not None and other > NOISY_OTHER_CPU_PCT and (res.get("window_s") or 0) >= 1.0:
        # Something outside the bench used the CPU during this window (shared machine).
        notes.append(f"noisy: other CPU {other:.0f}%")
    return "; ".join(notes) or None


def val(summ: dict[str, Any], v):
    """A measured value only when some operations succeeded."""
    return v if summ.get("ok") else None


def rates_in_slices(
    one_slice: Callable[[str], dict[str, Any]], first: str, second: str
) -> tuple[list[float], list[float]] | str:
    """Two measurements in alternating slices, first, second, second, first, first, second,
    second, first (`one_slice(kind)` runs one): the k-th slices of the two are neighbours,
    taken at one moment of a machine whose speed drifts within seconds. Answers the rates
    (op/s) of each, or the kind whose slice failed."""
    rates: dict[str, list[float]] = {first: [], second: []}
    for kind in (first, second, second, first, first, second, second, first):
        res = one_slice(kind)
        if not res.get("ok") or res["errors"] or not res["ops_per_s"]:
            return kind
        rates[kind].append(res["ops_per_s"])
    return rates[first], rates[second]


def median_ratio(numerators: list[float], denominators: list[float]) -> tuple[float, list[float]]:
    """The median of the four neighbouring pairs' ratios (one slice that met a hiccup does not
    move it), and the ratios sorted."""
    ratios = sorted(n / d for n, d in zip(numerators, denominators, strict=True))
    return (ratios[1] + ratios[2]) / 2, ratios


def paired_slices(rec: Recorder, log: Callable[[str], None], duration: float) -> None:
    """Each measurement both servers kept (`Ctx.measure(paired=True)`) run again on the two in
    alternating slices (`rates_in_slices`, `duration` / 8 each): measured one after the other,
    a ratio carries the machine's drift between the two measurements (a third within minutes
    here); in slices, the ratio is the median of the four neighbouring pairs'."""
    for scenario, again in rec.pairable.items():
        if scenario in rec.paired or set(again) != {"custody", "mlflow"}:
            continue
        sliced = rates_in_slices(
            lambda target, again=again: again[target](duration / 8), "custody", "mlflow"
        )
        if isinstance(sliced, str):
            log(f"  paired slices of {scenario!r} dropped: a {sliced} slice failed")
            rec.paired[scenario] = None
            continue
        custody, mlflow = sliced
        rec.paired[scenario] = median_ratio(custody, mlflow)
        log(
            f"  {'both':7s} {'  Custody/MLflow in alternating slices':44s} "
            f"{rec.paired[scenario][0]:.2f}x "
            f"(pairs {', '.join(f'{r:.2f}' for r in rec.paired[scenario][1])}; "
            f"Custody {', '.join(f'{r:.0f}' for r in custody)}, "
            f"MLflow {', '.join(f'{r:.0f}' for r in mlflow)} op/s) {scenario}"
        )


# ---------------------------------------------------------------------------------------------
# Checked API helpers


def now_ms() -> int:
    return int(time.time() * 1000)


def expect_ok(resp: Response, what: str) -> Any:
    if resp.is_endpoint_missing():
        raise EndpointMissing(f"{what}: {resp.short()}")
    if resp.status != 200:
        raise OpError(f"{what}: {resp.short()}")
    try:
        data = resp.json()
    except ValueError:
        raise OpError(f"{what}: 200 with a non-JSON body: {resp.body[:100]!r}") from None
    if not isinstance(data, dict):
        raise OpError(f"{what}: 200 with a non-object body")
    if "error_code" in data:
        raise OpError(f"{what}: 200 carrying an error: {resp.short()}")
    return data


def create_experiment(c: Client, name: str) -> str:
    data = expect_ok(c.post(f"{API}/experiments/create", {"name": name}), "experiments/create")
    exp_id = data.get("experiment_id")
    if not exp_id:
        raise OpError(f"experiments/create: no experiment_id in {data}")
    return str(exp_id)


def run_tags(name: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    tags = {
        "mlflow.user": "bench",
        "mlflow.source.name": "bench/run.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.runName": name,
    }
    if extra:
        tags.update(extra)
    return [{"key": k, "value": v} for k, v in tags.items()]


def create_run(c: Client, exp_id: str, name: str, extra_tags=None) -> dict[str, Any]:
    body = {
        "experiment_id": exp_id,
        "user_id": "bench",
        "run_name": name,
        "start_time": now_ms(),
        "tags": run_tags(name, extra_tags),
    }
    data = expect_ok(c.post(f"{API}/runs/create", body), "runs/create")
    info = (data.get("run") or {}).get("info") or {}
    run_id = info.get("run_id") or info.get("run_uuid")
    if not run_id:
        raise OpError(f"runs/create: no run.info.run_id in {str(data)[:200]}")
    if info.get("run_name") not in (None, name):
        raise OpError(f"runs/create: run_name {info.get('run_name')!r} != {name!r}")
    return info


def log_batch(c: Client, run_id: str, metrics=(), params=(), tags=()) -> None:
    body: dict[str, Any] = {"run_id": run_id}
    if metrics:
        body["metrics"] = list(metrics)
    if params:
        body["params"] = list(params)
    if tags:
        body["tags"] = list(tags)
    expect_ok(c.post(f"{API}/runs/log-batch", body), "runs/log-batch")


def metric_history_count(c: Client, run_id: str, key: str, max_pages: int = 100) -> int:
    n = 0
    token = None
    for _ in range(max_pages):
        params = {"run_uuid": run_id, "run_id": run_id, "metric_key": key, "max_results": 25000}
        if token:
            params["page_token"] = token
        data = expect_ok(c.get(f"{API}/metrics/get-history", params), "metrics/get-history")
        n += len(data.get("metrics") or [])
        token = data.get("next_page_token")
        if not token:
            return n
    raise OpError("metrics/get-history: more than max_pages pages")


def na_all(ctx: Ctx, rows: list[tuple[str, str, str, str, float | None]], reason: str) -> None:
    for scenario, metric, unit, better, goal in rows:
        ctx.rec.na(scenario, metric, unit, better, ctx.target, reason, goal=goal)


# ---------------------------------------------------------------------------------------------
# Tracking: log-batch


def scenario_log_batch(ctx: Ctx) -> None:
    c = ctx.client()
    exp = create_experiment(c, "bench-log-batch")
    threads = 4
    for keepalive in (True, False):
        mode = "keep-alive" if keepalive else "new conn/req"
        scen = f"log-batch 1000 metrics/req, {threads} thr, {mode}"
        runs = [create_run(c, exp, f"lb-{mode[:3]}-{t}")["run_id"] for t in range(threads)]
        batches = [0] * threads

        def op(tid: int, seq: int, client: Client, runs=runs, batches=batches) -> float:
            b = batches[tid]
            batches[tid] += 1
            ts = now_ms()
            metrics = [
                {
                    "key": f"m{k}",
                    "value": (b * 100 + j) * 0.001 + k,
                    "timestamp": ts,
                    "step": b * 100 + j,
                }
                for k in range(10)
                for j in range(100)
            ]
            resp = client.post(f"{API}/runs/log-batch", {"run_id": runs[tid], "metrics": metrics})
            data = expect_ok(resp, "log-batch")
            if data:
                raise OpError(f"log-batch: expected {{}}, got {str(data)[:100]}")
            return 1000.0

        summ = ctx.measure(
            scen,
            "log-batch " + mode,
            op,
            threads=threads,
            duration=ctx.opts.load_s,
            max_ops=100_000,
            keepalive=keepalive,
            profile=keepalive,
            paired=keepalive,
        )
        # Stored-data check: every step of key m0 of thread 0 must be in the history.
        note = err_note(summ)
        try:
            got = metric_history_count(c, runs[0], "m0")
            want = batches[0] * 100
            summ["history_check"] = {"want": want, "got": got}
            if got != want:
                note = f"history m0: {got} points, expected {want}"
                ctx.log(f"    CHECK FAILED: {note}")
        except (OpError, HttpError, EndpointMissing) as exc:
            summ["history_check"] = {"error": str(exc)}
            note = note or "history check failed"
            ctx.log(f"    history check failed: {str(exc)[:200]}")
        ctx.rec.set(
            scen,
            "metrics/s",
            "metrics/s",
            HIGHER,
            ctx.target,
            val(summ, summ["units_per_s"]),
            goal=5 if keepalive else None,
            note=note,
        )
        ctx.rec.set(
            scen, "request p50", "ms", LOWER, ctx.target, val(summ, summ["p50_ms"]), note=note
        )
        ctx.rec.set(
            scen, "request p99", "ms", LOWER, ctx.target, val(summ, summ["p99_ms"]), note=note
        )


# ---------------------------------------------------------------------------------------------
# Tracking: single log-metric


def scenario_log_metric(ctx: Ctx) -> None:
    c = ctx.client()
    exp = create_experiment(c, "bench-log-metric")
    threads = 8
    for keepalive in (True, False):
        mode = "keep-alive" if keepalive else "new conn/req"
        scen = f"log-metric, {threads} thr, {mode}"
        runs = [create_run(c, exp, f"lm-{mode[:3]}-{t}")["run_id"] for t in range(threads)]
        steps = [0] * threads

        def op(tid: int, seq: int, client: Client, runs=runs, steps=steps) -> float:
            s = steps[tid]
            steps[tid] += 1
            rid = runs[tid]
            body = {
                "run_uuid": rid,
                "key": "loss",
                "value": 1.0 / (s + 1),
                "timestamp": now_ms(),
                "step": s,
                "run_id": rid,
            }
            data = expect_ok(client.post(f"{API}/runs/log-metric", body), "log-metric")
            if data:
                raise OpError(f"log-metric: expected {{}}, got {str(data)[:100]}")
            return 1.0

        summ = ctx.measure(
            scen,
            "log-metric " + mode,
            op,
            threads=threads,
            duration=ctx.opts.load_s,
            max_ops=500_000,
            keepalive=keepalive,
            profile=keepalive,
            paired=keepalive,
        )
        note = err_note(summ)
        try:
            got = metric_history_count(c, runs[0], "loss")
            summ["history_check"] = {"want": steps[0], "got": got}
            if got != steps[0]:
                note = f"history: {got} points, expected {steps[0]}"
                ctx.log(f"    CHECK FAILED: {note}")
        except (OpError, HttpError, EndpointMissing) as exc:
            summ["history_check"] = {"error": str(exc)}
            note = note or "history check failed"
            ctx.log(f"    history check failed: {str(exc)[:200]}")
        goal = 3 if keepalive else None  # issue #15: log-metric >= 3x
        ctx.rec.set(
            scen,
            "requests/s",
            "req/s",
            HIGHER,
            ctx.target,
            val(summ, summ["ops_per_s"]),
            goal=goal,
            note=note,
        )
        ctx.rec.set(
            scen, "p50", "ms", LOWER, ctx.target, val(summ, summ["p50_ms"]), goal=goal, note=note
        )
        ctx.rec.set(scen, "p99", "ms", LOWER, ctx.target, val(summ, summ["p99_ms"]), note=note)


# ---------------------------------------------------------------------------------------------
# Tracking: run creation with params, tags and metrics


def scenario_create_runs(ctx: Ctx) -> None:
    c = ctx.client()
    exp = create_experiment(c, "bench-create-runs")
    threads = 4
    scen = f"run create+log-batch(10p,2t,10m)+finish, {threads} thr"

    def op(tid: int, seq: int, client: Client) -> float:
        name = f"cr-{seq:07d}"
        info = create_run(client, exp, name, {"team": "bench", "seq": str(seq)})
        rid = info["run_id"]
        if info.get("status") not in (None, "RUNNING"):
            raise OpError(f"runs/create: status {info.get('status')}")
        ts = now_ms()
        log_batch(
            client,
            rid,
            metrics=[
                {"key": f"m{k}", "value": k * 0.5 + seq, "timestamp": ts, "step": 0}
                for k in range(10)
            ],
            params=[{"key": f"p{k}", "value": str(seq * 10 + k)} for k in range(10)],
            tags=[{"key": "stage", "value": "bench"}, {"key": "host", "value": "local"}],
        )
        data = expect_ok(
            client.post(
                f"{API}/runs/update",
                {"run_uuid": rid, "status": "FINISHED", "end_time": now_ms(), "run_id": rid},
            ),
            "runs/update",
        )
        st = (data.get("run_info") or {}).get("status")
        if st not in (None, "FINISHED"):
            raise OpError(f"runs/update: status {st}")
        return 1.0

    summ = ctx.measure(
        scen,
        "create runs",
        op,
        threads=threads,
        duration=ctx.opts.load_s,
        max_ops=100_000,
        profile=True,
        paired=True,
    )
    note = err_note(summ)
    ctx.rec.set(
        scen,
        "runs/s",
        "runs/s",
        HIGHER,
        ctx.target,
        val(summ, summ["ops_per_s"]),
        goal=3,  # issue #15: the create-run sequence >= 3x
        note=note,
    )
    ctx.rec.set(
        scen,
        "per-run p50 (3 requests)",
        "ms",
        LOWER,
        ctx.target,
        val(summ, summ["p50_ms"]),
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Tracking: search over N runs

OPTIMIZERS = ["adam", "sgd", "rmsprop", "adagrad"]
COHORT = 500  # runs per tags.cohort value: the tag-equality query always matches 500 runs


def seed_run_data(i: int) -> dict[str, Any]:
    r = random.Random(i * 7919 + 17)
    return {
        "name": f"seed-{i:06d}",
        "tags": {"cohort": f"c{i // COHORT:04d}", "phase": ("train", "eval")[i % 2]},
        "params": {
            "optimizer": OPTIMIZERS[i % 4],
            "lr": f"{r.choice([0.1, 0.01, 0.001, 0.0001])}",
            "batch_size": str(r.choice([16, 32, 64, 128])),
            "layers": str(r.randint(1, 12)),
            "dataset": f"d{i // 1000:04d}",
        },
        "metrics": {"loss": r.random(), "accuracy": r.random(), "f1": r.random()},
    }


def seed_runs(ctx: Ctx, exp: str, start: int, stop: int) -> dict[str, Any]:
    """Create runs [start, stop) through the API: runs/create (with the run's tags) followed
    by one log-batch carrying its params, an extra tag and its metrics. Not a measurement."""
    ts = 1_700_000_000_000
    counter = {"next": start}
    lock = threading.Lock()

    def op(tid: int, seq: int, client: Client) -> float:
        with lock:
            i = counter["next"]
            counter["next"] += 1
        if i >= stop:
            return 0.0
        d = seed_run_data(i)
        extra = {"cohort": d["tags"]["cohort"]}
        info = create_run(client, exp, d["name"], extra)
        log_batch(
            client,
            info["run_id"],
            metrics=[
                {"key": k, "value": v, "timestamp": ts, "step": 0} for k, v in d["metrics"].items()
            ],
            params=[{"key": k, "value": v} for k, v in d["params"].items()],
            tags=[{"key": "phase", "value": d["tags"]["phase"]}],
        )
        return 1.0

    t0 = time.perf_counter()
    res = run_load(
        lambda: ctx.client(True),
        op,
        threads=ctx.opts.seed_threads,
        duration=3600,
        max_ops=stop - start,
        warmup_ops=0,
        hard_timeout=3600,
    )
    wall = time.perf_counter() - t0
    s = res.summary()
    ctx.log(
        f"  {ctx.target:7s} seeded runs {start}..{stop - 1} in {wall:.1f}s "
        f"({(stop - start) / wall:.0f} runs/s, errors={s['errors']}) [not a measurement]"
    )
    if s["errors"]:
        ctx.log(f"    seeding errors: {s['error_kinds']} {s['error_samples'][:2]}")
    info = {
        "target": ctx.target,
        "seed_from": start,
        "seed_to": stop,
        "seconds": wall,
        "errors": s["errors"],
        "error_samples": s["error_samples"][:3],
    }
    ctx.rec.info.append(info)
    return info


def analyze(ctx: Ctx) -> None:
    """Refresh the planner's statistics after bulk seeding, on both servers' databases alike:
    a running server has autovacuum do this; right after a bulk load it has not run yet."""
    import psycopg
    from servers import PG_HOST, PG_PORT, PG_USER

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=ctx.server.dbname, autocommit=True
    ) as conn:
        conn.execute("ANALYZE")
    ctx.log(f"  {ctx.target:7s} ANALYZE after seeding [not a measurement]")


def _search(client: Client, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    resp = client.post(f"{API}/runs/search", body)
    return expect_ok(resp, "runs/search"), resp.elapsed


def _kv(items) -> dict[str, Any]:
    return {x["key"]: x["value"] for x in (items or [])}


def scenario_search(ctx: Ctx, size: int) -> None:
    """Seed up to `size` runs (cumulative across sizes), then time the queries."""
    c = ctx.client()
    if "search_exp" not in ctx.state:
        ctx.state["search_exp"] = create_experiment(c, "bench-search")
        ctx.state["search_have"] = 0
    exp = ctx.state["search_exp"]
    have = ctx.state["search_have"]
    if have < size:
        info = seed_runs(ctx, exp, have, size)
        ctx.state["search_have"] = size
        analyze(ctx)
        if info["errors"]:
            ctx.state["seed_errors"] = ctx.state.get("seed_errors", 0) + info["errors"]
    n = size
    seed_note = f"seed errors: {ctx.state['seed_errors']}" if ctx.state.get("seed_errors") else None
    data = [seed_run_data(i) for i in range(n)]
    budget = ctx.opts.search_budget_s

    # (1) tag equality: tags.cohort = 'cNNNN' -> 500 runs (fewer in a last partial cohort),
    # one page of max_results=1000.
    n_full_cohorts = max(1, n // COHORT)
    cohort_count: dict[str, int] = {}
    for d in data:
        cohort_count[d["tags"]["cohort"]] = cohort_count.get(d["tags"]["cohort"], 0) + 1
    scen1 = f"search tags.cohort='c..' (500 hits) @{n} runs"

    def op_tag(tid: int, seq: int, client: Client) -> float:
        cohort = f"c{seq % n_full_cohorts:04d}"
        want = cohort_count.get(cohort, 0)
        body = {
            "experiment_ids": [exp],
            "filter": f"tags.cohort = '{cohort}'",
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 1000,
        }
        res, _ = _search(client, body)
        runs = res.get("runs") or []
        if len(runs) != want:
            raise OpError(f"tag search {cohort}: {len(runs)} runs, expected {want}")
        if res.get("next_page_token"):
            raise OpError("tag search: unexpected next_page_token")
        for r in runs:
            if _kv((r.get("data") or {}).get("tags")).get("cohort") != cohort:
                raise OpError("tag search: a run without the tag")
        return 1.0

    summ = ctx.measure(
        scen1,
        f"search tag= @{n}",
        op_tag,
        threads=1,
        duration=budget,
        max_ops=ctx.opts.tag_reps,
        warmup_ops=1,
        profile=True,
    )
    note = err_note(summ) or seed_note
    ctx.rec.set(scen1, "p50", "ms", LOWER, ctx.target, val(summ, summ["p50_ms"]), goal=5, note=note)
    ctx.rec.set(scen1, "p95", "ms", LOWER, ctx.target, val(summ, summ["p95_ms"]), note=note)
    ctx.state.setdefault("tag_p50", {})[n] = val(summ, summ["p50_ms"])

    # (2) metric range + param equality, ordered by a metric, fully paginated (1000/page).
    flt = "metrics.loss < 0.5 and params.optimizer = 'adam'"
    want_ids = sorted(
        (d for d in data if d["metrics"]["loss"] < 0.5 and d["params"]["optimizer"] == "adam"),
        key=lambda d: -d["metrics"]["accuracy"],
    )
    want_names = [d["name"] for d in want_ids]
    scen2 = f"search metric<+param= order by metric, all pages @{n} runs ({len(want_names)} hits)"
    first_page: list[float] = []
    pages_per_query: list[int] = []
    query_total: list[float] = []

    def op_sorted(tid: int, seq: int, client: Client) -> float:
        token = None
        got: list[str] = []
        accs: list[float] = []
        pages = 0
        total = 0.0
        while True:
            body = {
                "experiment_ids": [exp],
                "filter": flt,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": 1000,
                "order_by": ["metrics.accuracy DESC"],
            }
            if token:
                body["page_token"] = token
            res, el = _search(client, body)
            total += el
            if pages == 0:
                first_page.append(el)
            pages += 1
            for r in res.get("runs") or []:
                got.append((r.get("info") or {}).get("run_name"))
                accs.append(_kv((r.get("data") or {}).get("metrics")).get("accuracy"))
            token = res.get("next_page_token")
            if not token or pages > n // 1000 + 5:
                break
        pages_per_query.append(pages)
        query_total.append(total)
        if got != want_names:
            if sorted(got) == sorted(want_names):
                raise OpError("sorted search: right runs, wrong order")
            raise OpError(
                f"sorted search: {len(got)} runs, expected {len(want_names)} "
                f"({len(set(got) - set(want_names))} unexpected)"
            )
        return float(pages)

    summ = ctx.measure(
        scen2,
        f"search metric+param sorted @{n}",
        op_sorted,
        threads=1,
        duration=budget,
        max_ops=ctx.opts.sorted_reps,
        warmup_ops=1,
    )
    note = err_note(summ) or seed_note
    fp = sorted(first_page[1:] or first_page)  # first_page[0] is the warm-up query
    ctx.rec.set(
        scen2,
        "first page p50",
        "ms",
        LOWER,
        ctx.target,
        val(summ, _ms(percentile(fp, 0.5))),
        goal=5,
        note=note,
    )
    ctx.rec.set(
        scen2,
        "first page p95",
        "ms",
        LOWER,
        ctx.target,
        val(summ, _ms(percentile(fp, 0.95))),
        note=note,
    )
    qt = sorted(query_total[1:] or query_total)
    ctx.rec.set(
        scen2,
        "all pages p50",
        "ms",
        LOWER,
        ctx.target,
        val(summ, _ms(percentile(qt, 0.5))),
        note=note,
    )
    ctx.rec.set(
        scen2,
        "all pages p95",
        "ms",
        LOWER,
        ctx.target,
        val(summ, _ms(percentile(qt, 0.95))),
        note=note,
    )

    # (3) no filter, default order, every page (1000/page): the whole experiment.
    scen3 = f"search all runs, 1000/page, full pagination @{n} runs"
    page_lat: list[float] = []
    all_total: list[float] = []

    def op_all(tid: int, seq: int, client: Client) -> float:
        token = None
        seen: set[str] = set()
        pages = 0
        t_start = len(page_lat)
        while True:
            body = {"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", "max_results": 1000}
            if token:
                body["page_token"] = token
            res, el = _search(client, body)
            page_lat.append(el)
            pages += 1
            for r in res.get("runs") or []:
                seen.add((r.get("info") or {}).get("run_id"))
            token = res.get("next_page_token")
            if not token or pages > n // 1000 + 5:
                break
        all_total.append(sum(page_lat[t_start:]))
        if len(seen) != n:
            raise OpError(f"full pagination: {len(seen)} distinct runs, expected {n}")
        return float(pages)

    summ = ctx.measure(
        scen3,
        f"search all pages @{n}",
        op_all,
        threads=1,
        duration=budget,
        max_ops=ctx.opts.allpages_reps,
        warmup_ops=0,
    )
    note = err_note(summ) or seed_note
    pl = sorted(page_lat)
    ctx.rec.set(
        scen3, "page p50", "ms", LOWER, ctx.target, val(summ, _ms(percentile(pl, 0.5))), note=note
    )
    ctx.rec.set(
        scen3, "page p95", "ms", LOWER, ctx.target, val(summ, _ms(percentile(pl, 0.95))), note=note
    )
    ctx.rec.set(
        scen3,
        "whole pagination (mean)",
        "ms",
        LOWER,
        ctx.target,
        val(summ, _ms(sum(all_total) / len(all_total)) if all_total else None),
        note=note,
    )


def search_flatness(ctx: Ctx, sizes: list[int]) -> None:
    p = ctx.state.get("tag_p50") or {}
    if len(sizes) < 2 or sizes[0] not in p or sizes[-1] not in p or not p[sizes[0]]:
        return
    ctx.rec.set(
        f"search tags.cohort= growth {sizes[0]}->{sizes[-1]} runs",
        "p50 ratio (1.0 = flat)",
        "x",
        LOWER,
        ctx.target,
        (p[sizes[-1]] or 0) / p[sizes[0]],
    )


def _ms(v):
    return None if v is None else v * 1000.0


# ---------------------------------------------------------------------------------------------
# Artifacts


def scenario_artifacts(ctx: Ctx) -> None:
    c = ctx.client()
    exp = create_experiment(c, "bench-artifacts")
    info = create_run(c, exp, "artifacts")
    uri = info.get("artifact_uri") or ""
    if uri.startswith("mlflow-artifacts:/"):
        base = uri[len("mlflow-artifacts:/") :].strip("/")
    else:
        base = f"{exp}/{info['run_id']}/artifacts"
    size = 64 * 1024
    nfiles = ctx.opts.small_files
    rng = random.Random(42)
    blobs = [rng.randbytes(size) for _ in range(nfiles)]
    threads = 4
    # Each connection sends two files untimed first, so that the worker holding it is warm
    # (a cold worker's first requests cost several times a warm one's); the timed part is
    # the rest.
    warm = 2

    for keepalive in (True, False):
        mode = "keep-alive" if keepalive else "new conn/req"
        prefix = f"{base}/small-{'ka' if keepalive else 'nc'}"
        scen_up = f"artifact upload {nfiles} x 64 KiB, {threads} thr, {mode}"

        # The measurement writes f00000... (the download reads them); its alternating slices
        # (`paired`) write new files after those, as new small files are the case measured.
        written: set[int] = set()
        fresh = itertools.count(nfiles)

        def op_up(tid, seq, client, prefix=prefix, written=written, fresh=fresh):
            if seq >= nfiles:
                return 0.0
            name = next(fresh) if seq in written else seq
            written.add(seq)
            resp = client.request(
                "PUT",
                f"{ART}/{prefix}/f{name:05d}.bin",
                body=blobs[seq],
                content_type="application/octet-stream",
            )
            if resp.is_endpoint_missing():
                raise EndpointMissing(f"artifact PUT: {resp.short()}")
            if resp.status != 200:
                raise OpError(f"artifact PUT: {resp.short()}")
            return float(size)

        summ = ctx.measure(
            scen_up,
            "small upload " + mode,
            op_up,
            threads=threads,
            duration=120,
            max_ops=nfiles - warm * threads,
            keepalive=keepalive,
            warmup_ops=warm,
            paired=keepalive,
        )
        note = err_note(summ)
        ctx.rec.set(
            scen_up,
            "throughput",
            "MB/s",
            HIGHER,
            ctx.target,
            val(summ, summ["units_per_s"] / 1e6),
            goal=2 if keepalive else None,  # issue #15: small artifacts >= 2x
            note=note,
        )
        ctx.rec.set(
            scen_up,
            "files/s",
            "files/s",
            HIGHER,
            ctx.target,
            val(summ, summ["ops_per_s"]),
            note=note,
        )

        scen_dn = f"artifact download {nfiles} x 64 KiB, {threads} thr, {mode}"

        def op_dn(tid, seq, client, prefix=prefix):
            if seq >= nfiles:
                return 0.0
            resp = client.request("GET", f"{ART}/{prefix}/f{seq:05d}.bin")
            if resp.status != 200:
                raise OpError(f"artifact GET: {resp.short()}")
            if resp.body != blobs[seq]:
                raise OpError(f"artifact GET: content differs ({len(resp.body)} bytes)")
            return float(size)

        summ = ctx.measure(
            scen_dn,
            "small download " + mode,
            op_dn,
            threads=threads,
            duration=120,
            max_ops=nfiles - warm * threads,
            keepalive=keepalive,
            warmup_ops=warm,
            paired=keepalive,
        )
        note = err_note(summ)
        ctx.rec.set(
            scen_dn,
            "throughput",
            "MB/s",
            HIGHER,
            ctx.target,
            val(summ, summ["units_per_s"] / 1e6),
            goal=2 if keepalive else None,  # issue #15: small artifacts >= 2x
            note=note,
        )

    big = random.Random(7).randbytes(ctx.opts.large_mib * 1024 * 1024)
    digest = hashlib.sha256(big).hexdigest()
    scen_bu = f"artifact upload 1 x {ctx.opts.large_mib} MiB"
    scen_bd = f"artifact download 1 x {ctx.opts.large_mib} MiB"

    def op_bu(tid, seq, client):
        resp = client.request(
            "PUT",
            f"{ART}/{base}/big/model-{seq}.bin",
            body=big,
            content_type="application/octet-stream",
        )
        if resp.status != 200:
            raise OpError(f"big PUT: {resp.short()}")
        return float(len(big))

    summ = ctx.measure(
        scen_bu,
        "big upload",
        op_bu,
        threads=1,
        duration=300,
        max_ops=ctx.opts.large_reps,
        warmup_ops=0,
    )
    note = err_note(summ)
    ctx.rec.set(
        scen_bu,
        "throughput",
        "MB/s",
        HIGHER,
        ctx.target,
        val(summ, summ["units_per_s"] / 1e6),
        note=note,
    )
    n_up = summ["ok"]

    def op_bd(tid, seq, client):
        resp = client.request("GET", f"{ART}/{base}/big/model-{seq % max(1, n_up)}.bin")
        if resp.status != 200:
            raise OpError(f"big GET: {resp.short()}")
        if hashlib.sha256(resp.body).hexdigest() != digest:
            raise OpError(f"big GET: content differs ({len(resp.body)} bytes)")
        return float(len(big))

    summ = ctx.measure(
        scen_bd,
        "big download",
        op_bd,
        threads=1,
        duration=300,
        max_ops=ctx.opts.large_reps,
        warmup_ops=0,
    )
    note = err_note(summ)
    ctx.rec.set(
        scen_bd,
        "throughput",
        "MB/s",
        HIGHER,
        ctx.target,
        val(summ, summ["units_per_s"] / 1e6),
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Registry

N_VERSIONS = 50
PROD_VERSION = "50"
ALIAS = "champion"
ALIAS_VERSION = "42"


def _find_version(obj: Any) -> set[str]:
    """Every value under a key named 'version' anywhere in a JSON document."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "version" and isinstance(v, (str, int)):
                found.add(str(v))
            else:
                found |= _find_version(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= _find_version(v)
    return found


def registry_rows(threads: int) -> dict[str, list]:
    rows = {}
    for keepalive in (True, False):
        mode = "keep-alive" if keepalive else "new conn/req"
        goal = 5 if keepalive else None  # issue #15: registry reads >= 5x
        rows[f"latest{keepalive}"] = [
            (
                f"get-latest-versions Production, {threads} thr, {mode}",
                "requests/s",
                "req/s",
                HIGHER,
                goal,
            ),
            (f"get-latest-versions Production, {threads} thr, {mode}", "p50", "ms", LOWER, None),
            (f"get-latest-versions Production, {threads} thr, {mode}", "p99", "ms", LOWER, None),
        ]
        rows[f"alias{keepalive}"] = [
            (
                f"get model version by alias, {threads} thr, {mode}",
                "requests/s",
                "req/s",
                HIGHER,
                goal,
            ),
            (f"get model version by alias, {threads} thr, {mode}", "p50", "ms", LOWER, None),
            (f"get model version by alias, {threads} thr, {mode}", "p99", "ms", LOWER, None),
        ]
        rows[f"resolve{keepalive}"] = [
            (
                f"GET /api/v1/resolve models:/m/Production, {threads} thr, {mode}",
                "requests/s",
                "req/s",
                HIGHER,
                None,
            ),
            (
                f"GET /api/v1/resolve models:/m/Production, {threads} thr, {mode}",
                "p50",
                "ms",
                LOWER,
                None,
            ),
            (
                f"GET /api/v1/resolve models:/m/Production, {threads} thr, {mode}",
                "p99",
                "ms",
                LOWER,
                None,
            ),
        ]
    # A poller that accepts the poll interval's staleness (Cache-Control: max-stale): the
    # same answers without the per-request read of the cache versions.
    for key, scen in (
        ("resolve304True", f"GET /api/v1/resolve with If-None-Match (304), {threads} thr"),
        ("resolveStaleTrue", f"GET /api/v1/resolve, max-stale, {threads} thr"),
        (
            "resolve304StaleTrue",
            f"GET /api/v1/resolve with If-None-Match (304), max-stale, {threads} thr",
        ),
    ):
        rows[key] = [
            (f"{scen}, keep-alive", "requests/s", "req/s", HIGHER, None),
            (f"{scen}, keep-alive", "p50", "ms", LOWER, None),
            (f"{scen}, keep-alive", "p99", "ms", LOWER, None),
        ]
    rows["register"] = [
        ("register model-versions/create, 4 thr", "versions/s", "req/s", HIGHER, 10),
        ("register model-versions/create, 4 thr", "p50", "ms", LOWER, None),
    ]
    return rows


def _set_rows(ctx: Ctx, rows, summ) -> None:
    note = err_note(summ)
    vals = {
        "requests/s": summ["ops_per_s"],
        "versions/s": summ["ops_per_s"],
        "p50": summ["p50_ms"],
        "p99": summ["p99_ms"],
    }
    if not summ.get("ok"):
        vals = dict.fromkeys(vals)
    for scenario, metric, unit, better, goal in rows:
        ctx.rec.set(scenario, metric, unit, better, ctx.target, vals[metric], goal=goal, note=note)


def scenario_registry(ctx: Ctx) -> None:
    threads = 8
    rows = registry_rows(threads)
    c = ctx.client()
    model = "bench-model"
    try:
        exp = create_experiment(c, "bench-registry")
        run = create_run(c, exp, "registry-source")
        run_id = run["run_id"]
        expect_ok(
            c.post(f"{API}/registered-models/create", {"name": model}), "registered-models/create"
        )
    except EndpointMissing as exc:
        for r in rows.values():
            na_all(ctx, r, "endpoint missing")
        ctx.log(f"  {ctx.target:7s} registry: n/a ({exc})")
        return

    # Which `source` does the server accept? The 3.18 client sends runs:/<run>/model (or
    # models:/<id>); fall back to the artifact location when runs:/ is refused.
    sources = [f"runs:/{run_id}/model", f"mlflow-artifacts:/{exp}/{run_id}/artifacts/model"]
    source = None
    for s in sources:
        resp = c.post(
            f"{API}/model-versions/create", {"name": model, "source": s, "run_id": run_id}
        )
        if resp.status == 200:
            source = s
            break
        ctx.log(f"    model-versions/create refused source {s}: {resp.short()[:160]}")
        if resp.is_endpoint_missing():
            break
    if source is None:
        for r in rows.values():
            na_all(ctx, r, "model-versions/create unavailable")
        return
    ctx.rec.info.append({"target": ctx.target, "registry_source": source})
    for _ in range(N_VERSIONS - 1):
        data = expect_ok(
            c.post(
                f"{API}/model-versions/create", {"name": model, "source": source, "run_id": run_id}
            ),
            "model-versions/create",
        )
    last = str((data.get("model_version") or {}).get("version"))
    if last != str(N_VERSIONS):
        raise OpError(f"setup: last version is {last}, expected {N_VERSIONS}")
    setup_missing = []
    # Custody's default policy wants the lineage tags on the source run before Staging.
    for key in ("dataset_version", "git_commit", "triggered_by"):
        c.post(f"{API}/runs/set-tag", {"run_id": run_id, "key": key, "value": "bench"})
    # Through Staging: Custody refuses None -> Production (MLflow accepts either path).
    for v, stage in (
        ("10", "Staging"),
        ("10", "Production"),
        (PROD_VERSION, "Staging"),
        (PROD_VERSION, "Production"),
    ):
        resp = c.post(
            f"{API}/model-versions/transition-stage",
            {
                "name": model,
                "version": v,
                "stage": stage,
                "archive_existing_versions": False,
            },
        )
        if resp.is_endpoint_missing():
            setup_missing.append("transition-stage")
            break
        expect_ok(resp, "transition-stage")
    resp = c.post(
        f"{API}/registered-models/alias", {"name": model, "alias": ALIAS, "version": ALIAS_VERSION}
    )
    if resp.is_endpoint_missing():
        setup_missing.append("set alias")
    else:
        expect_ok(resp, "set alias")

    def op_latest(tid, seq, client):
        data = expect_ok(
            client.post(
                f"{API}/registered-models/get-latest-versions",
                {"name": model, "stages": ["Production"]},
            ),
            "get-latest-versions",
        )
        mvs = data.get("model_versions") or []
        if (
            len(mvs) != 1
            or str(mvs[0].get("version")) != PROD_VERSION
            or mvs[0].get("current_stage") != "Production"
        ):
            raise OpError(f"get-latest-versions: {str(mvs)[:200]}")
        return 1.0

    def op_alias(tid, seq, client):
        resp = client.get(f"{API}/registered-models/alias", {"name": model, "alias": ALIAS})
        data = expect_ok(resp, "get alias")
        mv = data.get("model_version") or {}
        if str(mv.get("version")) != ALIAS_VERSION or mv.get("name") != model:
            raise OpError(f"get alias: {str(mv)[:200]}")
        return 1.0

    def resolver(headers: dict[str, str]):
        def op_resolve(tid, seq, client):
            resp = client.get(
                "/api/v1/resolve", {"uri": f"models:/{model}/Production"}, headers=headers
            )
            data = expect_ok(resp, "resolve")
            if PROD_VERSION not in _find_version(data):
                raise OpError(f"resolve: version {PROD_VERSION} not in {str(data)[:200]}")
            return 1.0

        return op_resolve

    etag = {}

    def resolver_304(headers: dict[str, str]):
        def op_resolve_304(tid, seq, client):
            if "value" not in etag:
                first = client.get("/api/v1/resolve", {"uri": f"models:/{model}/Production"})
                expect_ok(first, "resolve")
                etag["value"] = first.headers.get("etag", "")
            resp = client.get(
                "/api/v1/resolve",
                {"uri": f"models:/{model}/Production"},
                headers={"If-None-Match": etag["value"], **headers},
            )
            if resp.status != 304:
                raise OpError(f"resolve with If-None-Match: HTTP {resp.status}, expected 304")
            return 1.0

        return op_resolve_304

    stale = {"Cache-Control": "max-stale"}

    plan = [
        ("latest", op_latest, "transition-stage" in setup_missing),
        ("alias", op_alias, "set alias" in setup_missing),
    ]
    keepalive_only = ("resolve304", "resolveStale", "resolve304Stale")
    if ctx.target == "custody":
        missing = "transition-stage" in setup_missing
        plan.append(("resolve", resolver({}), missing))
        plan.append(("resolve304", resolver_304({}), missing))
        plan.append(("resolveStale", resolver(stale), missing))
        plan.append(("resolve304Stale", resolver_304(stale), missing))
    else:
        for ka in (True, False):
            na_all(ctx, rows[f"resolve{ka}"], "Custody-only endpoint")
        for key in keepalive_only:
            na_all(ctx, rows[f"{key}True"], "Custody-only endpoint")
    for key, op, missing in plan:
        for keepalive in (True, False) if key not in keepalive_only else (True,):
            rws = rows[f"{key}{keepalive}"]
            if missing:
                na_all(ctx, rws, "setup endpoint missing")
                continue
            mode = "keep-alive" if keepalive else "new conn/req"
            try:
                summ = ctx.measure(
                    rws[0][0],
                    f"{key} {mode}",
                    op,
                    threads=threads,
                    duration=ctx.opts.reg_s,
                    max_ops=500_000,
                    keepalive=keepalive,
                    profile=keepalive,
                    paired=keepalive,
                )
            except EndpointMissing as exc:
                na_all(ctx, rws, "endpoint missing")
                ctx.log(f"  {ctx.target:7s} {key}: n/a ({str(exc)[:120]})")
                break
            _set_rows(ctx, rws, summ)

    # Registration throughput into a fresh model; afterwards the versions must be exactly
    # 1..n with no duplicates (concurrent creates must not collide).
    reg_model = "bench-model-reg"
    expect_ok(
        c.post(f"{API}/registered-models/create", {"name": reg_model}), "registered-models/create"
    )
    versions: list[str] = []
    vlock = threading.Lock()

    def op_register(tid, seq, client):
        data = expect_ok(
            client.post(
                f"{API}/model-versions/create",
                {"name": reg_model, "source": source, "run_id": run_id},
            ),
            "model-versions/create",
        )
        mv = data.get("model_version") or {}
        if mv.get("status") != "READY":
            raise OpError(f"model-versions/create: status {mv.get('status')!r}")
        with vlock:
            versions.append(str(mv.get("version")))
        return 1.0

    summ = ctx.measure(
        rows["register"][0][0],
        "register",
        op_register,
        threads=4,
        duration=ctx.opts.reg_s,
        max_ops=ctx.opts.reg_ops,
        warmup_ops=1,
    )
    want = [str(i) for i in range(1, len(versions) + 1)]
    if sorted(versions, key=int) != want:
        summ["errors"] += 1
        summ["version_check"] = "duplicate or missing version numbers"
        ctx.log("    CHECK FAILED: registration produced duplicate/missing version numbers")
    _set_rows(ctx, rows["register"], summ)


# ---------------------------------------------------------------------------------------------
# The floor: the cheapest request the same server and workers answer, and hot reads beside it

FLOOR_SCENARIO = "floor: GET /health (no auth, no database), 8 thr, keep-alive"


def _reads_rows(name: str) -> list:
    scen = f"{name}, 8 thr, keep-alive"
    return [
        (scen, "requests/s", "req/s", HIGHER, None),
        (scen, "p50", "ms", LOWER, None),
        (scen, "p99", "ms", LOWER, None),
    ]


def op_health(tid, seq, client):
    resp = client.get("/health")
    if resp.status != 200:
        raise OpError(f"/health: HTTP {resp.status}")
    return 1.0


def scenario_floor(ctx: Ctx) -> None:
    threads = 8

    summ = ctx.measure(
        FLOOR_SCENARIO,
        "floor /health keep-alive",
        op_health,
        threads=threads,
        duration=ctx.opts.load_s,
        max_ops=2_000_000,
        keepalive=True,
    )
    _set_rows(ctx, _reads_rows(FLOOR_SCENARIO.removesuffix(", 8 thr, keep-alive")), summ)
    if summ.get("ok"):
        ctx.rec.floor[ctx.target] = summ["ops_per_s"]

    # Authenticated reads of one object each: the fixed cost of a request over the floor.
    c = ctx.client()
    exp = create_experiment(c, "bench-floor")
    run_id = create_run(c, exp, "floor-run")["run_id"]
    model = "bench-floor-model"
    expect_ok(c.post(f"{API}/registered-models/create", {"name": model}), "create model")

    def reader(path, params, what):
        def op(tid, seq, client):
            expect_ok(client.get(f"{API}/{path}", params), what)
            return 1.0

        return op

    for name, path, params in (
        ("experiments/get", "experiments/get", {"experiment_id": exp}),
        ("runs/get", "runs/get", {"run_id": run_id}),
        ("registered-models/get", "registered-models/get", {"name": model}),
    ):
        rows = _reads_rows(f"hot read {name}")
        try:
            summ = ctx.measure(
                rows[0][0],
                f"read {name} keep-alive",
                reader(path, params, name),
                threads=threads,
                duration=ctx.opts.load_s,
                max_ops=2_000_000,
                keepalive=True,
                profile=name == "experiments/get",
            )
        except EndpointMissing:
            na_all(ctx, rows, "endpoint missing")
            continue
        _set_rows(ctx, rows, summ)


# Share of the floor each kind of request should reach (issue #15).
FLOOR_GOALS = [
    ("304", 0.8),
    ("resolve", 0.7),
    ("hot read", 0.5),
    ("get-latest-versions", 0.5),
    ("by alias", 0.5),
]


def floor_goal(scenario: str) -> float | None:
    for needle, goal in FLOOR_GOALS:
        if needle in scenario:
            return goal
    return None


SCENARIOS = ["floor", "log_batch", "log_metric", "create_runs", "search", "artifacts", "registry"]

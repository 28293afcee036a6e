#!/usr/bin/env python
"""Custody vs `mlflow server`: the same HTTP workload against both, side by side.

    .venv/bin/python bench/run.py                 # full run (~15 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # smoke test (~2-3 min)
    .venv/bin/python bench/run.py --only search --runs 2000,10000,100000
    .venv/bin/python bench/run.py --target custody --keep-servers

See bench/README.md for what each scenario measures and how to read the table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as S  # noqa: E402
import servers  # noqa: E402
from httpc import HttpError  # noqa: E402
from loadgen import EndpointMissing, OpError  # noqa: E402
from sysmon import Monitor, loadavg, machine_cpu  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short smoke run (~2-3 minutes)")
    p.add_argument(
        "--runs",
        default=None,
        help="run counts for the search scenario, comma-separated and seeded "
        "cumulatively (default 2000,10000; --quick: 1000)",
    )
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(S.SCENARIOS)}")
    p.add_argument("--target", choices=["custody", "mlflow", "both"], default="both")
    p.add_argument(
        "--keep-servers",
        action="store_true",
        help="leave both servers (and their databases) running at the end",
    )
    p.add_argument(
        "--user",
        default=os.environ.get("BENCH_USER"),
        help="basic-auth user sent on every request (env BENCH_USER)",
    )
    p.add_argument(
        "--password",
        default=os.environ.get("BENCH_PASSWORD"),
        help="basic-auth password (env BENCH_PASSWORD)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the main measurements of the key scenarios, run a short extra "
        "pass under py-spy (whole server process tree) and summarise where "
        "the server's CPU goes; not part of the table numbers",
    )
    p.add_argument(
        "--custody-role",
        default="data-scientist",
        help="role of the bench user created in Custody (default data-scientist)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per throughput measurement (default 15; --quick: 3)",
    )
    p.add_argument("--out", default=str(BENCH_DIR / "results"), help="results directory")
    return p.parse_args(argv)


def make_opts(args) -> S.Opts:
    if args.runs:
        sizes = sorted({int(x) for x in args.runs.split(",") if x.strip()})
    else:
        sizes = [1000] if args.quick else [2000, 10000]
    if args.quick:
        o = S.Opts(
            quick=True,
            sizes=sizes,
            load_s=3.0,
            reg_s=3.0,
            small_files=100,
            large_mib=64,
            large_reps=1,
            tag_reps=5,
            sorted_reps=2,
            allpages_reps=1,
            reg_ops=60,
            search_budget_s=60,
        )
    else:
        o = S.Opts(
            quick=False,
            sizes=sizes,
            load_s=12.0,
            reg_s=8.0,
            small_files=2000,
            large_mib=64,
            large_reps=2,
            tag_reps=20,
            sorted_reps=5,
            allpages_reps=2,
            reg_ops=400,
            search_budget_s=120,
        )
    if args.duration:
        o.load_s = o.reg_s = args.duration
    return o


class Log:
    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


def idle_check(seconds: float = 2.0) -> float:
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return 100.0 * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def main(argv=None) -> int:
    args = parse_args(argv)
    opts = make_opts(args)
    only = [x.strip() for x in args.only.split(",") if x.strip()] or list(S.SCENARIOS)
    bad = [x for x in only if x not in S.SCENARIOS]
    if bad:
        print(f"unknown scenario(s): {bad}; choose from {S.SCENARIOS}", file=sys.stderr)
        return 2
    targets = ["custody", "mlflow"] if args.target == "both" else [args.target]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    outdir = Path(args.out) / (stamp + ("-quick" if args.quick else ""))
    outdir.mkdir(parents=True, exist_ok=True)
    log = Log(outdir / "bench.log")
    # Custody's MLflow API wants HTTP Basic credentials: the bench creates this user in its
    # fresh database and sends the same Authorization header to both servers (MLflow without
    # --app-name basic-auth ignores it), so both see identical requests.
    user = args.user or "bench"
    password = args.password or ("bench-" + secrets.token_urlsafe(12))
    auth = (user, password)

    workdir = Path(tempfile.mkdtemp(prefix="custody-bench-"))
    meta = {
        "started_utc": stamp,
        "quick": args.quick,
        "argv": sys.argv[1:],
        "sizes": opts.sizes,
        "scenarios": only,
        "targets": targets,
        "machine": {
            "cores": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "mem_gib": _mem_gib(),
            "kernel": platform.release(),
            "python_client": platform.python_version(),
            "loadavg_before": loadavg(),
        },
        "postgres": servers.pg_version(),
        "server_config": {
            "custody": f"gunicorn config.wsgi:application -k gthread -w {servers.WORKERS} "
            f"--threads {servers.THREADS} --keep-alive 5",
            "mlflow": f"mlflow server --workers {servers.WORKERS} (uvicorn)",
        },
        "workdir": str(workdir),
        "custody_user": f"{user} (role {args.custody_role}, HTTP Basic)",
    }
    log(f"results -> {outdir}")
    log(f"machine: {meta['machine']}; PostgreSQL {meta['postgres']}")
    rec = S.Recorder()
    srvs: dict[str, servers.Server] = {}
    failures: list[str] = []
    dbstats = servers.DbStats()
    monitor = Monitor(servers.postmaster_pid(), dbstats)
    try:
        for t in targets:
            try:
                if t == "custody":
                    srvs[t] = servers.start_custody(
                        workdir, servers.python_of_project(), log, user, password, args.custody_role
                    )
                else:
                    srvs[t] = servers.start_mlflow(workdir, log)
                log(f"{t}: {srvs[t].version} on 127.0.0.1:{srvs[t].port} pid {srvs[t].pid}")
            except Exception as exc:
                failures.append(f"{t} did not start: {exc}")
                log(f"!! {t} did not start: {exc}")
        meta["versions"] = {t: s.version for t, s in srvs.items()}
        # /health answers as soon as one worker is up; wait until the others have finished
        # importing (the machine goes quiet) so start-up CPU does not land in a measurement.
        settle_deadline = time.monotonic() + 120
        busy = idle_check(1.0)
        while busy > 15.0 and time.monotonic() < settle_deadline:
            busy = idle_check(1.0)
        meta["idle_machine_busy_pct_with_servers_up"] = idle_check()
        log(f"machine busy with servers idle: {meta['idle_machine_busy_pct_with_servers_up']:.1f}%")

        profile_dir = None
        if args.profile:
            import pyspy_profile as prof

            if prof.ensure_py_spy(log):
                profile_dir = outdir
        ctxs = {
            t: S.Ctx(
                target=t,
                server=s,
                opts=opts,
                rec=rec,
                monitor=monitor,
                dbstats=dbstats,
                log=log,
                auth=auth,
                profile_dir=profile_dir,
            )
            for t, s in srvs.items()
        }

        def run_one(name: str, fn, ctx: S.Ctx, *a) -> None:
            if not ctx.server.alive():
                failures.append(f"{name} on {ctx.target}: server is not running")
                return
            t0 = time.monotonic()
            try:
                fn(ctx, *a)
            except EndpointMissing as exc:
                log(f"  {ctx.target:7s} {name}: n/a, endpoint missing: {str(exc)[:200]}")
                rec.set(
                    f"{name} (whole scenario)",
                    "status",
                    "",
                    S.HIGHER,
                    ctx.target,
                    None,
                    note=f"n/a: {str(exc)[:80]}",
                )
            except (OpError, HttpError) as exc:
                failures.append(f"{name} on {ctx.target}: {exc}")
                log(f"  {ctx.target:7s} {name}: FAILED: {str(exc)[:300]}")
            except Exception as exc:
                failures.append(f"{name} on {ctx.target}: {type(exc).__name__}: {exc}")
                log(f"  {ctx.target:7s} {name}: CRASHED: {traceback.format_exc()[-1500:]}")
            log(f"  {ctx.target:7s} {name} took {time.monotonic() - t0:.0f}s")

        fns = {
            "floor": S.scenario_floor,
            "log_batch": S.scenario_log_batch,
            "log_metric": S.scenario_log_metric,
            "create_runs": S.scenario_create_runs,
            "artifacts": S.scenario_artifacts,
            "registry": S.scenario_registry,
        }
        for name in only:
            log(f"== {name}")
            if name == "search":
                for size in opts.sizes:
                    for ctx in ctxs.values():
                        run_one(f"search@{size}", S.scenario_search, ctx, size)
                for ctx in ctxs.values():
                    S.search_flatness(ctx, opts.sizes)
            else:
                for ctx in ctxs.values():
                    run_one(name, fns[name], ctx)
                S.paired_slices(rec, log, opts.load_s)
        for t, s in srvs.items():
            if not s.alive():
                failures.append(
                    f"{t} server died during the run; log tail:\n{servers.tail(s.log_path)}"
                )
            meta.setdefault("db_size_mb", {})[t] = dbstats.db_size(s.dbname) / 1e6
    finally:
        meta["machine"]["loadavg_after"] = loadavg()
        for t, s in srvs.items():
            try:
                shutil.copy(s.log_path, outdir / f"{t}-server.log")
            except OSError:
                pass
        if not args.keep_servers:
            for s in srvs.values():
                s.stop()
        else:
            for t, s in srvs.items():
                log(f"kept {t} on http://127.0.0.1:{s.port} (pid {s.pid}, db {s.dbname})")
    meta["finished_utc"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta["failures"] = failures

    table = render_table(rec, targets)
    resources = render_resources(rec)
    floor = render_floor(rec, targets)
    md = render_markdown(meta, table, resources, rec, failures, floor)
    (outdir / "results.md").write_text(md)
    (outdir / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "rows": [r.__dict__ for r in rec.rows.values()],
                "details": rec.details,
                "profiles": rec.profiles,
                "info": rec.info,
                "floor": rec.floor,
                "paired": {
                    scenario: None if got is None else {"ratio": got[0], "pairs": got[1]}
                    for scenario, got in rec.paired.items()
                },
                "floor_beside": {
                    f"{t} | {s}": {"share": share, "floor_per_s": floor_rate}
                    for (t, s), (share, floor_rate) in rec.floor_beside.items()
                },
            },
            indent=1,
            default=str,
        )
    )
    print()
    print(md)
    log(f"wrote {outdir / 'results.md'} and results.json")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(v, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "x":
        return f"{v:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render_table(rec: S.Recorder, targets: list[str]) -> list[list[str]]:
    head = [
        "scenario",
        "metric",
        "better",
        "Custody",
        "MLflow",
        "Custody/MLflow",
        "Custody advantage",
        "in alternating slices",
        "goal",
    ]
    rows = [head]
    for r in rec.rows.values():
        c = r.values.get("custody")
        m = r.values.get("mlflow")
        cs = _fmt(c, r.unit) + ("" if c is None else f" {r.unit}")
        ms = _fmt(m, r.unit) + ("" if m is None else f" {r.unit}")
        if "custody" in r.notes:
            cs += f" ({r.notes['custody']})" if c is not None else f" [{r.notes['custody']}]"
        if "mlflow" in r.notes:
            ms += f" ({r.notes['mlflow']})" if m is not None else f" [{r.notes['mlflow']}]"
        if "custody" not in targets:
            cs = "-"
        if "mlflow" not in targets:
            ms = "-"
        ratio = adv = goal = sliced = ""
        if c and m:
            ratio = f"{c / m:.2f}"
            speed = c / m if r.better == S.HIGHER else m / c
            adv = f"{speed:.1f}x " + ("better" if speed >= 1 else "worse")
            # A throughput row of a measurement also run in alternating slices is judged by
            # that ratio: the two servers measured at the same moments of the machine.
            paired = rec.paired.get(r.scenario) if r.better == S.HIGHER else None
            if paired is not None:
                speed = paired[0]
                sliced = f"{speed:.1f}x"
            if r.goal:
                notes = " ".join(r.notes.values())
                if "errors" in notes or "check failed" in notes or "failed" in notes:
                    # a number from failing answers proves nothing either way
                    goal = f">={r.goal}x: no verdict (errors)"
                else:
                    goal = f">={r.goal}x " + ("met" if speed >= r.goal else "MISSED")
                    if "noisy" in notes:
                        goal += " (noisy machine)"
        elif r.goal:
            goal = f">={r.goal}x"
        rows.append(
            [
                r.scenario,
                r.metric,
                f"{r.better} is better" if r.unit else "",
                cs,
                ms,
                ratio,
                adv,
                sliced,
                goal,
            ]
        )
    return rows


def render_floor(rec: S.Recorder, targets: list[str]) -> list[list[str]] | None:
    """Each keep-alive 8-thread requests/s row as a share of the same server's /health."""
    if not rec.floor:
        return None
    head = [
        "scenario",
        "Custody req/s",
        "Custody share (in slices beside the floor)",
        "MLflow req/s",
        "MLflow share",
        "goal",
    ]
    rows = [head]
    for r in rec.rows.values():
        if r.metric != "requests/s" or "8 thr, keep-alive" not in r.scenario:
            continue
        cells = [r.scenario]
        custody_share = None
        for t in ("custody", "mlflow"):
            v, floor = r.values.get(t), rec.floor.get(t)
            beside = rec.floor_beside.get((t, r.scenario))
            if t not in targets or v is None or not (beside or floor):
                cells += ["-", "-"]
                continue
            share = beside[0] if beside else v / floor
            if t == "custody":
                custody_share = share
            shown = f"{100 * share:.0f}%"
            if beside and floor:
                shown += f" (floor {_fmt(beside[1], 'req/s')}; {100 * v / floor:.0f}% of the first)"
            cells += [_fmt(v, "req/s"), shown]
        goal = S.floor_goal(r.scenario)
        if goal is None:
            cells.append("")
        elif custody_share is None:
            cells.append(f">={100 * goal:.0f}%")
        else:
            noisy = any("noisy" in n for n in r.notes.values())
            cells.append(
                f">={100 * goal:.0f}% "
                + ("met" if custody_share >= goal else "MISSED")
                + (" (noisy machine)" if noisy else "")
            )
        rows.append(cells)
    return rows


def render_resources(rec: S.Recorder) -> list[list[str]]:
    head = [
        "target",
        "measurement",
        "ops/s",
        "server CPU",
        "PostgreSQL CPU",
        "client CPU",
        "machine busy",
        "other CPU",
        "srv ms/op",
        "pg ms/op",
        "DB xact/op",
        "rows written/op",
        "errors",
    ]
    rows = [head]
    for d in rec.details:
        r = d.get("resources") or {}

        def pct(k, r=r):
            v = r.get(k)
            return "-" if v is None else f"{v:.0f}%"

        def num(k, nd=2, r=r):
            v = r.get(k)
            return "-" if v is None else f"{v:.{nd}f}"

        rows.append(
            [
                d["target"],
                d["label"],
                f"{d['ops_per_s']:.1f}",
                pct("server_cpu_pct"),
                pct("postgres_cpu_pct"),
                pct("client_cpu_pct"),
                pct("machine_busy_pct"),
                pct("other_cpu_pct"),
                num("server_cpu_ms_per_op"),
                num("postgres_cpu_ms_per_op"),
                num("db_xact_per_op", 1),
                num("db_rows_written_per_op", 0),
                str(d["errors"]),
            ]
        )
    return rows


def md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for r in rows[1:]:
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |")
    return "\n".join(out)


def render_markdown(meta, table, resources, rec, failures, floor=None) -> str:
    v = meta.get("versions", {})
    lines = [
        f"# Custody vs MLflow benchmark, {meta['started_utc']}"
        + (" (QUICK smoke run)" if meta["quick"] else ""),
        "",
        f"* Custody: {v.get('custody', 'not run')} — {meta['server_config']['custody']}",
        f"* MLflow: {v.get('mlflow', 'not run')} — {meta['server_config']['mlflow']} "
        "(3.18.0 is not installable from the registry here; 3.17.2 is the newest that resolves)",
        f"* PostgreSQL {meta['postgres']} on 127.0.0.1, one fresh database per server",
        f"* machine: {meta['machine']['cores']} cores ({meta['machine']['cpu_model']}), "
        f"{meta['machine']['mem_gib']:.0f} GiB; load average before {meta['machine']['loadavg_before']}, "
        f"after {meta['machine'].get('loadavg_after')}; busy with both servers idle: "
        f"{meta.get('idle_machine_busy_pct_with_servers_up', 0):.1f}%",
        f"* search sizes: {meta['sizes']} runs; client, servers and PostgreSQL share the same "
        "cores (CPU shares below)",
        "",
        "Custody/MLflow is the raw ratio of the two numbers. 'Custody advantage' turns it into a "
        "speed-up whatever the direction: above 1x Custody is better (faster or more "
        "throughput), below 1x it is worse. The throughput of log-batch, log-metric, run "
        "creation and the registry reads is also measured, after both servers ran the "
        "scenario, in alternating slices (Custody, MLflow, MLflow, Custody, Custody, MLflow, "
        "MLflow, Custody; an eighth of a measurement's duration each), because the machine's "
        "speed drifts between two measurements made one after the other: 'in alternating "
        "slices' is the median of the four neighbouring pairs' ratios, and the goal of those "
        "rows is judged on it.",
        "",
        md_table(table),
    ]
    if floor:
        lines += [
            "",
            "## Share of the floor",
            "",
            "Each keep-alive, 8-thread throughput as a share of the same server's cheapest "
            "request (`GET /health`, no authentication, no database, same workers and "
            "threads): what is left of the floor once the request pays for its work. The "
            "share is measured right after each scenario, with the scenario and the floor in "
            "alternating slices (floor, scenario, scenario, floor, floor, scenario, scenario, "
            "floor; an eighth of the scenario's duration each), because the machine's speed "
            "drifts within seconds: the share is the median of the four neighbouring pairs' "
            "ratios; then the median floor slice, and the scenario's measured rate as a share "
            "of the floor measured first.",
            "",
            md_table(floor),
        ]
    lines += [
        "",
        "## Where the time goes (per measurement)",
        "",
        "CPU columns are shares of ONE core over the measured window (200% = both cores). "
        "'machine busy' is the share of all cores; 'other CPU' is what the machine spent outside "
        "the server under test, PostgreSQL and the load generator (should be near 0). ms/op = CPU milliseconds per operation. "
        "DB counters come from pg_stat_database for the server's own database.",
        "",
        md_table(resources),
    ]
    if rec.profiles:
        lines += [
            "",
            "## CPU profiles (py-spy --gil, separate pass: Python CPU samples of the whole "
            "server process tree)",
            "",
            "| target | measurement | samples | self time by package (top 8) |",
            "|---|---|---|---|",
        ]
        for p in rec.profiles:
            pk = ", ".join(f"{n} {v:.0f}%" for n, v in p.get("self_by_package", [])[:8])
            lines.append(f"| {p['target']} | {p['label']} | {p.get('samples', 0)} | {pk} |")
        lines.append("")
        lines.append("Per-function detail: profile-*.txt next to this file.")
    if rec.info:
        lines += ["", "## Notes", ""]
        for i in rec.info:
            lines.append(f"* {json.dumps(i, default=str)}")
    if failures:
        lines += ["", "## FAILURES", ""] + [f"* {f}" for f in failures]
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of `manage.py import_mlflow`: an `mlflow server` (bench/.mlflow-venv, on its own
PostgreSQL database) is filled with N runs, each with a 100-step metric history, a few params
and tags, then imported into a fresh Custody database; the import is timed, and a second,
no-op import too.

    flock /tmp/custody-bench.lock .venv/bin/python bench/import_bench.py --runs 10000

Prints the import's own report (counts, per-phase throughput) and the wall times."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import servers  # noqa: E402

SOURCE_DB = "mlflow_import_bench"
TARGET_DB = "custody_import_bench"
_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        session = requests.Session()
        # uvicorn may close a kept-alive connection just as it is reused: retry those.
        retry = Retry(total=5, backoff_factor=0.2, allowed_methods=None)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        _local.session = session
    return _local.session


def _post(base: str, path: str, body: dict) -> dict:
    for attempt in range(5):
        try:
            response = _session().post(f"{base}/api/2.0/mlflow/{path}", json=body, timeout=120)
            response.raise_for_status()
            return response.json()
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            # An overloaded uvicorn sometimes drops a connection mid-answer.
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def fill(
    base: str,
    runs: int,
    steps: int,
    experiments: int,
    threads: int,
    artifacts_every: int,
    budget: float = 0,
) -> tuple[int, float]:
    """Up to `runs` runs, or as many as `budget` seconds allow (0: no limit)."""
    exp_ids = [
        _post(base, "experiments/create", {"name": f"import-bench-{i}"})["experiment_id"]
        for i in range(experiments)
    ]

    def one(i: int) -> None:
        start = 1_700_000_000_000 + i * 1000
        run = _post(
            base,
            "runs/create",
            {"experiment_id": exp_ids[i % len(exp_ids)], "start_time": start, "run_name": f"r{i}"},
        )["run"]["info"]
        run_id = run["run_id"]
        _post(
            base,
            "runs/log-batch",
            {
                "run_id": run_id,
                "metrics": [
                    {"key": "loss", "value": 1.0 / (s + 1), "timestamp": start + s, "step": s}
                    for s in range(steps)
                ],
                "params": [
                    {"key": "lr", "value": str(0.001 * (i % 10))},
                    {"key": "seed", "value": str(i)},
                ],
                "tags": [
                    {"key": "dataset_version", "value": "v1"},
                    {"key": "git_commit", "value": "abc"},
                ],
            },
        )
        if artifacts_every and i % artifacts_every == 0:
            root = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
            _session().put(
                f"{base}/api/2.0/mlflow-artifacts/artifacts/{root}/summary.txt",
                data=f"run {i}\n".encode() * 100,
                timeout=120,
            ).raise_for_status()
        _post(
            base, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": start + steps}
        )

    started = time.monotonic()
    deadline = started + budget if budget else None

    filled = 0
    with ThreadPoolExecutor(threads) as pool:
        # Submitted a few at a time (Executor.map would take every run at once), so the
        # budget can stop the fill.
        for start in range(0, runs, threads * 4):
            if deadline and time.monotonic() > deadline:
                break
            chunk = range(start, min(runs, start + threads * 4))
            list(pool.map(one, chunk))
            before, filled = filled, filled + len(chunk)
            if filled // 500 > before // 500:
                rate = filled / (time.monotonic() - started)
                print(f"  filled {filled} runs ({rate:.1f}/s)", flush=True)
    return filled, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--fill-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8, help="import_mlflow --workers")
    parser.add_argument(
        "--fill-seconds",
        type=float,
        default=0,
        help="stop filling after this long, with fewer runs (a loaded machine fills slowly)",
    )
    parser.add_argument("--artifacts-every", type=int, default=0, help="a small file every N runs")
    parser.add_argument("--out", default="", help="also write the result as JSON here")
    args = parser.parse_args()

    python = servers.python_of_project()
    with tempfile.TemporaryDirectory(prefix="custody-import-bench-") as tmp:
        workdir = Path(tmp)
        # Its schema migrations take minutes on a loaded machine.
        source = servers.start_mlflow(workdir, print, dbname=SOURCE_DB, health_timeout=1200)
        base = f"http://127.0.0.1:{source.port}"
        try:
            print(f"filling {base} with {args.runs} runs x {args.steps} steps", flush=True)
            runs, fill_seconds = fill(
                base,
                args.runs,
                args.steps,
                args.experiments,
                args.fill_threads,
                args.artifacts_every,
                args.fill_seconds,
            )
            servers.recreate_database(TARGET_DB)
            env = {
                **os.environ,
                "DATABASE_URL": f"postgres://{servers.PG_USER}@{servers.PG_HOST}:{servers.PG_PORT}/{TARGET_DB}",
                "CUSTODY_ARTIFACT_ROOT": str(workdir / "custody-artifacts"),
                "CUSTODY_DATA_DIR": str(workdir),
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "SECRET_KEY": "import-bench-" + "x" * 40,
                "LOG_LEVEL": "WARNING",
            }
            env.pop("REDIS_URL", None)
            subprocess.run(
                [python, "manage.py", "migrate", "-v", "0"], cwd=servers.REPO, env=env, check=True
            )
            result = {
                "runs": runs,
                "steps": args.steps,
                "fill_seconds": round(fill_seconds, 1),
            }
            for label in ("first", "second"):
                report = workdir / f"{label}.json"
                started = time.monotonic()
                subprocess.run(
                    [
                        python,
                        "manage.py",
                        "import_mlflow",
                        "--tracking-uri",
                        base,
                        "--no-progress",
                        "--workers",
                        str(args.workers),
                        "--report",
                        str(report),
                    ],  # fmt: skip
                    cwd=servers.REPO,
                    env=env,
                    check=True,
                )
                seconds = time.monotonic() - started
                data = json.loads(report.read_text())
                result[label] = {
                    "seconds": round(seconds, 1),
                    "runs_per_second": round(runs / seconds, 1),
                    "metric_points_per_second": round(runs * args.steps / seconds, 0),
                    "verified": data["verified"],
                    "counts": data["counts"],
                    "throughput": data["throughput"],
                }
            print(json.dumps(result, indent=2))
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=2))
        finally:
            source.stop()
            servers.drop_database(SOURCE_DB)
            servers.drop_database(TARGET_DB)


if __name__ == "__main__":
    main()

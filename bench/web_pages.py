"""Page load times at 100,000 runs, one command:

    .venv/bin/python bench/web_pages.py                       # SQLite file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/custody_bench_web .venv/bin/python bench/web_pages.py

Seeds (bulk inserts, not timed) one experiment with N runs, each with 3 params, 3 latest
metrics and 2 tags, then loads pages through Django's test client as a signed-in data
scientist (the whole server path but the socket: middleware, access decision, query,
template): p50/p95 over 20 loads each. Prints a Markdown table."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from audit_bench import analyze, percentile, setup  # noqa: E402


def seed(runs: int) -> int:
    from django.db import transaction

    from tracking.models import Experiment, LatestMetric, Param, Run, RunTag

    experiment = Experiment.objects.create(
        name="big", artifact_location="mlflow-artifacts:/1", creation_time=1, last_update_time=1
    )
    batch = 10_000
    with transaction.atomic():
        for start in range(0, runs, batch):
            ids = range(start, min(runs, start + batch))
            Run.objects.bulk_create(
                [
                    Run(
                        run_id=f"{i:032x}",
                        experiment=experiment,
                        name=f"run-{i}",
                        user_id="scientist",
                        start_time=1_700_000_000_000 + i,
                        artifact_uri="mlflow-artifacts:/x",
                        status="FINISHED",
                    )
                    for i in ids
                ]
            )
            Param.objects.bulk_create(
                [
                    Param(run_id=f"{i:032x}", key=k, value=str(v))
                    for i in ids
                    for k, v in (
                        ("lr", i % 7 / 100),
                        ("depth", i % 9),
                        ("optimizer", "adam" if i % 3 else "sgd"),
                    )
                ]
            )
            LatestMetric.objects.bulk_create(
                [
                    LatestMetric(run_id=f"{i:032x}", key=k, value=v, timestamp=1, step=0)
                    for i in ids
                    for k, v in (
                        ("loss", (i % 1000) / 1000),
                        ("accuracy", ((i * 7) % 1000) / 1000),
                        ("val_auc", ((i * 13) % 1000) / 1000),
                    )
                ]
            )
            RunTag.objects.bulk_create(
                [
                    RunTag(run_id=f"{i:032x}", key=k, value=v)
                    for i in ids
                    for k, v in (("team", f"t{i % 5}"), ("cohort", f"c{i % 200}"))
                ]
            )
    return experiment.experiment_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = setup(Path(tmp))
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", verbosity=0)  # pages use hashed names
        started = time.perf_counter()
        exp_id = seed(args.runs)
        analyze()
        seeded = time.perf_counter() - started
        from django.test import Client

        from accounts import services as accounts

        user = accounts.user_create(username="scientist", role="data-scientist")
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        pages = {
            "experiments list": ("/experiments/", {}),
            "runs table, first page (newest first)": (f"/experiments/{exp_id}/", {}),
            "runs table with 3 metric columns, sorted by a metric": (
                f"/experiments/{exp_id}/",
                {
                    "col": ["metrics.val_auc", "metrics.loss", "params.lr"],
                    "order": "metrics.val_auc DESC",
                },
            ),
            "runs table filtered (metric and param)": (
                f"/experiments/{exp_id}/",
                {
                    "filter": "metrics.loss < 0.5 and params.optimizer = 'adam'",
                    "col": ["metrics.loss"],
                },
            ),
            "runs table filtered by tag": (
                f"/experiments/{exp_id}/",
                {"filter": "tags.cohort = 'c42'"},
            ),
            "models list": ("/models/", {}),
        }
        rows = []
        for label, (path, params) in pages.items():
            response = client.get(path, params)
            assert response.status_code == 200, (label, response.status_code)
            samples = []
            for _ in range(args.loads):
                start = time.perf_counter()
                client.get(path, params)
                samples.append((time.perf_counter() - start) * 1000)
            rows.append((label, statistics.median(samples), percentile(samples, 0.95)))
    print(
        f"# Page loads ({database}; {args.runs:,} runs in one experiment, seeded in "
        f"{seeded:.0f} s; Django test client, signed in)\n"
    )
    print("| page | p50 ms | p95 ms |\n|---|---|---|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    slowest = max(rows, key=lambda r: r[1])
    print(f"\nSlowest page: {slowest[0]}, {slowest[1]:.1f} ms p50.")


if __name__ == "__main__":
    main()

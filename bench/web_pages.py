"""Page load times at 100,000 runs, one command:

    .venv/bin/python bench/web_pages.py                       # SQLite file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/custody_bench_web .venv/bin/python bench/web_pages.py

Seeds (bulk inserts, not timed) one experiment with N runs, each with 3 params, 3 latest
metrics and 2 tags; one more run with a long history (--history points, default 100,000, of
one metric); another experiment of --neighbour-runs runs (default 20,000) with keys of its
own, as on a shared server; a model with --versions versions (default 300) of which some
wait for review.
Then loads pages through Django's test client as a signed-in data scientist (the review queue
as a reviewer; the whole server path but the socket: middleware, access decision, query,
template): p50/p95 over --loads loads each. Prints a Markdown table, with the machine's load
average (1 minute) at the start and at the end of the timed loads. The PostgreSQL database
named by DATABASE_URL is dropped and recreated."""

from __future__ import annotations

import argparse
import os
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


def seed_neighbours(runs: int) -> None:
    """Another experiment, as a shared server holds many: `runs` runs logging metric, param and
    tag keys the big experiment does not have (two on every run, one of twenty on a run in
    twenty), written after it. The big experiment's pages must not pay for its rows."""
    from django.db import transaction

    from tracking.models import Experiment, LatestMetric, Param, Run, RunTag

    experiment = Experiment.objects.create(
        name="neighbours",
        artifact_location="mlflow-artifacts:/2",
        creation_time=1,
        last_update_time=1,
    )
    with transaction.atomic():
        for start in range(0, runs, 10_000):
            ids = [f"a{i:031x}" for i in range(start, min(runs, start + 10_000))]
            Run.objects.bulk_create(
                Run(
                    run_id=run_id,
                    experiment=experiment,
                    name=f"n-{run_id[-6:]}",
                    user_id="neighbour",
                    start_time=1_600_000_000_000,
                    artifact_uri="mlflow-artifacts:/y",
                    status="FINISHED",
                )
                for run_id in ids
            )
            keys = {n: ("bleu", "rouge", f"rare_{n % 20}") for n in range(len(ids))}
            LatestMetric.objects.bulk_create(
                LatestMetric(run_id=run_id, key=key, value=0.5, timestamp=1, step=0)
                for n, run_id in enumerate(ids)
                for key in keys[n]
            )
            Param.objects.bulk_create(
                Param(run_id=run_id, key=key, value="x")
                for n, run_id in enumerate(ids)
                for key in ("tokenizer", "vocab", f"rare_{n % 20}")
            )
            RunTag.objects.bulk_create(
                RunTag(run_id=run_id, key=key, value="y")
                for n, run_id in enumerate(ids)
                for key in ("corpus", f"rare_{n % 20}")
            )


def seed_history(experiment_id: int, points: int) -> tuple[str, str]:
    """A run with `points` steps of "loss" (and the same of "accuracy"), and a short one."""
    from django.db import transaction

    from tracking.models import LatestMetric, Metric, Run

    long_id, short_id = "f" * 32, "e" * 32
    with transaction.atomic():
        for run_id, name in ((long_id, "long-history"), (short_id, "short-history")):
            Run.objects.create(
                run_id=run_id,
                experiment_id=experiment_id,
                name=name,
                user_id="scientist",
                start_time=1,
                artifact_uri="mlflow-artifacts:/x",
                status="FINISHED",
            )
        for start in range(0, points, 20_000):
            Metric.objects.bulk_create(
                [
                    Metric(run_id=long_id, key=key, value=1 / (s + 1), timestamp=s, step=s)
                    for s in range(start, min(points, start + 20_000))
                    for key in ("loss", "accuracy")
                ]
            )
        Metric.objects.bulk_create(
            Metric(run_id=short_id, key="loss", value=1 / (s + 1), timestamp=s, step=s)
            for s in range(100)
        )
        # What logging these points through the API leaves beside them (each key's latest
        # point, and the history version the charts are kept by).
        LatestMetric.objects.bulk_create(
            LatestMetric(
                run_id=run_id, key=key, value=1 / n, timestamp=n - 1, step=n - 1, history_version=n
            )
            for run_id, key, n in (
                (long_id, "loss", points),
                (long_id, "accuracy", points),
                (short_id, "loss", 100),
            )
        )
    return long_id, short_id


def log_point(run_id: str) -> None:
    """One more point of "loss", as log-metric writes it (the kept chart is then stale)."""
    from tracking import services as tracking
    from tracking.models import Run

    run = Run.objects.get(pk=run_id)
    step = int(time.time() * 1000)
    tracking.run_log_batch(
        run_id=run_id,
        metrics=[{"key": "loss", "value": 0.5, "timestamp": step, "step": step}],
        run=run,
    )


def seed_registry(run_id: str, versions: int, scientist) -> int:
    """Model "big-model" with `versions` versions; every 10th asks for Staging and then
    Production (which waits for review). Returns the number of open requests."""
    from core.errors import ApplicationError
    from governance.services import requests as governance
    from registry import services as registry

    registry.registered_model_create(name="big-model")
    for _ in range(versions):
        registry.model_version_create(name="big-model", source=f"runs:/{run_id}/model")
    for number in range(1, versions + 1, 10):
        for stage in ("Staging", "Production"):  # Staging applies at once by default
            try:
                governance.request_transition(
                    user=scientist, name="big-model", version=number, stage=stage
                )
            except ApplicationError:
                break
    from governance.models import TransitionRequest

    return TransitionRequest.objects.filter(status=TransitionRequest.Status.OPEN).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=300)
    parser.add_argument(
        "--neighbour-runs",
        type=int,
        default=20_000,
        help="runs of another experiment, with keys of their own",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = setup(Path(tmp))
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", verbosity=0)  # pages use hashed names
        started = time.perf_counter()
        exp_id = seed(args.runs)
        seed_neighbours(args.neighbour_runs)
        from django.test import Client

        from accounts import services as accounts
        from core.pagination import encode_page_token
        from tracking.selectors import runs_search_scope

        user = accounts.user_create(username="scientist", role="data-scientist")
        reviewer = accounts.user_create(username="reviewer", role="reviewer")
        long_id, short_id = seed_history(exp_id, args.history)
        open_requests = seed_registry(long_id, args.versions, user)
        analyze()
        seeded = time.perf_counter() - started
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        reviewing = Client(HTTP_HOST="127.0.0.1")
        reviewing.force_login(reviewer)
        deep = encode_page_token(
            args.runs // 2,
            runs_search_scope(
                user=user,
                experiment_ids=[str(exp_id)],
                # the table nests child runs: its pages are of the top-level runs
                filter_string="tags.`mlflow.parentRunId` IS NULL",
                view_type="active",
                order_by=[],
            ),
        )
        middle = args.versions // 2
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
            "runs table grouped by a param (lr: 7 groups of 14,286 runs, too large to figure)": (
                f"/experiments/{exp_id}/",
                {
                    "group": "params.lr",
                    "col": ["metrics.val_auc", "metrics.loss", "metrics.accuracy"],
                },
            ),
            "runs table grouped by a param, filtered by a tag and a param (groups of 952 or 953, figured)": (
                f"/experiments/{exp_id}/",
                {
                    "group": "params.lr",
                    "filter": "tags.team = 't1' and params.optimizer = 'sgd'",
                    "col": ["metrics.val_auc", "metrics.loss", "metrics.accuracy"],
                },
            ),
            "runs table grouped by a tag (cohort: 200 groups of 500), default columns": (
                f"/experiments/{exp_id}/",
                {"group": "tags.cohort"},
            ),
            "runs table grouped by a param, filtered by a metric and sorted by it": (
                f"/experiments/{exp_id}/",
                {
                    "group": "params.optimizer",
                    "filter": "metrics.loss < 0.5",
                    "order": "metrics.val_auc DESC",
                    "col": ["metrics.val_auc", "metrics.loss"],
                },
            ),
            f"runs table, a deep page (offset {args.runs // 2:,})": (
                f"/experiments/{exp_id}/",
                {"page": deep},
            ),
            f"run page ({args.history:,} steps of 2 metrics, charts sampled)": (
                f"/runs/{long_id}/",
                {},
            ),
            f"run page right after a point is logged ({args.history:,} steps, the kept chart extended)": (
                f"/runs/{long_id}/",
                {},
                lambda: log_point(long_id),
            ),
            "compare of two runs (one with the long history)": (
                "/compare/",
                {"runs": [long_id, short_id]},
            ),
            "models list": ("/models/", {}),
            f"model page ({args.versions} versions)": ("/models/big-model/", {}),
            "version page": (f"/models/big-model/versions/{middle}/", {}),
            "review queue (as a reviewer)": ("/reviews/", {}),
        }
        rows = []
        load_before = os.getloadavg()[0]
        for label, (path, params, *before) in pages.items():
            browser = reviewing if path == "/reviews/" else client
            response = browser.get(path, params)
            assert response.status_code == 200, (label, response.status_code)
            samples = []
            for _ in range(args.loads):
                for untimed in before:
                    untimed()
                start = time.perf_counter()
                browser.get(path, params)
                samples.append((time.perf_counter() - start) * 1000)
            rows.append((label, statistics.median(samples), percentile(samples, 0.95)))
        load_after = os.getloadavg()[0]
    print(
        f"# Page loads ({database}; {args.runs:,} runs in one experiment and "
        f"{args.neighbour_runs:,} in another, seeded in {seeded:.0f} s; "
        f"{args.history:,}-step history; {args.versions} versions, "
        f"{open_requests} open review requests; Django test client, signed in)\n"
    )
    print("| page | p50 ms | p95 ms |\n|---|---|---|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    print(f"\nLoad average (1 min): {load_before:.2f} before the loads, {load_after:.2f} after.")
    slowest = max(rows, key=lambda r: r[1])
    print(f"\nSlowest page: {slowest[0]}, {slowest[1]:.1f} ms p50.")


if __name__ == "__main__":
    main()

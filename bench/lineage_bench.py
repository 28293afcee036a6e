"""Lineage benchmark, one command:

    .venv/bin/python bench/lineage_bench.py                   # SQLite file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/custody_bench_lineage \\
        .venv/bin/python bench/lineage_bench.py

Seeds (bulk inserts, not timed) 100,000 runs in 10 experiments, each with a dataset_version
tag naming one of 1,000 dataset versions (every tenth run names two, joined with '+'), a
git_commit tag and, for a fifth of them, a logged dataset input; 5,000 model versions of 500
models registered from runs; 500 deployments. Then times, through the functions the API
calls (lineage.graph.impact and lineage.graph.traverse, with a data scientist's permissions):
the impact query for one dataset version and a depth-5 ancestry query from a deployment,
p50/p95 over 50 calls each on different targets. Target: under 50 ms p50."""

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


def seed(runs: int, datasets: int, versions: int, deployments: int) -> None:
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from registry.models import Deployment, ModelVersion, RegisteredModel
    from tracking.models import Dataset, Experiment, Run, RunInput, RunTag

    User.objects.create_user("owner")
    experiments = [
        Experiment.objects.create(
            name=f"exp-{i}",
            artifact_location=f"mlflow-artifacts:/{i + 1}",
            creation_time=1,
            last_update_time=1,
        )
        for i in range(10)
    ]
    dataset_rows = Dataset.objects.bulk_create(
        [
            Dataset(experiment=experiments[i % 10], name=f"ds{i % 200}", digest=f"v{i // 200}")
            for i in range(datasets)
        ]
    )
    batch = 10_000
    with transaction.atomic():
        for start in range(0, runs, batch):
            rows = [
                Run(
                    run_id=f"{i:032x}",
                    experiment=experiments[i % 10],
                    name=f"run-{i}",
                    user_id="owner",
                    start_time=i,
                    artifact_uri="mlflow-artifacts:/x",
                )
                for i in range(start, min(runs, start + batch))
            ]
            Run.objects.bulk_create(rows)
            tags = []
            inputs = []
            for i in range(start, min(runs, start + batch)):
                d = i % datasets
                value = f"ds{d % 200}_v{d // 200}"
                if i % 10 == 0:
                    other = (d + 7) % datasets
                    value += f"+ds{other % 200}_v{other // 200}"
                tags.append(RunTag(run_id=f"{i:032x}", key="dataset_version", value=value))
                tags.append(RunTag(run_id=f"{i:032x}", key="git_commit", value=f"{i % 5000:040x}"))
                if i % 5 == 0:
                    inputs.append(
                        RunInput(run_id=f"{i:032x}", dataset=dataset_rows[d], context="training")
                    )
            RunTag.objects.bulk_create(tags)
            RunInput.objects.bulk_create(inputs)
        models = RegisteredModel.objects.bulk_create(
            [
                RegisteredModel(
                    name=f"model-{m}",
                    name_key=f"model-{m}",
                    creation_timestamp=1,
                    last_updated_timestamp=1,
                    last_version=versions // 500,
                )
                for m in range(500)
            ]
        )
        stride = runs // versions
        mvs = ModelVersion.objects.bulk_create(
            [
                ModelVersion(
                    registered_model=models[v % 500],
                    version=v // 500 + 1,
                    source=f"runs:/{v * stride:032x}/model",
                    storage_location="x",
                    run_id=f"{v * stride:032x}",
                    creation_timestamp=1,
                    last_updated_timestamp=1,
                )
                for v in range(versions)
            ]
        )
        now = timezone.now()
        Deployment.objects.bulk_create(
            [
                Deployment(
                    endpoint=f"/predict-{e}",
                    version=mvs[e * (versions // deployments)],
                    model_uri="models:/x/1",
                    since=now,
                )
                for e in range(deployments)
            ]
        )


def timed(fn, targets) -> tuple[float, float]:
    samples = []
    for target in targets:
        start = time.perf_counter()
        fn(target)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), percentile(samples, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--datasets", type=int, default=1_000)
    parser.add_argument("--versions", type=int, default=5_000)
    parser.add_argument("--deployments", type=int, default=500)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = setup(Path(tmp))
        started = time.perf_counter()
        seed(args.runs, args.datasets, args.versions, args.deployments)
        analyze()
        seeded = time.perf_counter() - started
        from accounts import services as accounts
        from lineage import graph

        user = accounts.user_create(username="scientist", role="data-scientist")
        graph.impact("ds1", "v1", user)  # warm-up
        stride = args.runs // args.versions

        def dataset_of(i: int) -> tuple[str, str]:
            # a dataset version used by runs that have model versions (and some deployments)
            d = (i * stride) % args.datasets
            return f"ds{d % 200}", f"v{d // 200}"

        impact = timed(lambda i: graph.impact(*dataset_of(i), user), range(1, 1 + args.calls))
        sizes = graph.impact(*dataset_of(0), user)
        ancestry = timed(
            lambda e: graph.traverse(f"deployment:/predict-{e}", "up", 5, user),
            range(args.calls),
        )
        nodes = len(graph.traverse("deployment:/predict-1", "up", 5, user).nodes)
    print(
        f"# Lineage benchmark ({database}; {args.runs:,} runs, {args.datasets:,} dataset "
        f"versions, {args.versions:,} model versions, {args.deployments} deployments; "
        f"seeded in {seeded:.0f} s)\n"
    )
    print("| query | p50 ms | p95 ms | result size |\n|---|---|---|---|")
    print(
        f"| impact of one dataset version | {impact[0]:.1f} | {impact[1]:.1f} | "
        f"{len(sizes['runs'])} runs, {len(sizes['versions'])} versions, "
        f"{len(sizes['deployments'])} deployments |"
    )
    print(
        f"| depth-5 ancestry of a deployment | {ancestry[0]:.1f} | {ancestry[1]:.1f} | "
        f"{nodes} nodes |"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

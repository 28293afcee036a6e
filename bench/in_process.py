"""Hot requests timed in process, one command:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/custody_bench_inproc \\
        .venv/bin/python bench/in_process.py 2>/dev/null
    ... --cases health,upload --n 2000 --reps 6 --profile upload
    ... --cases create-run --n 300    # the create-run sequence: three requests per "request"

Calls Django's WSGI handler in a loop (no socket, no gunicorn): each case's best mean over
`--reps` rounds of `--n` requests, in microseconds, with `GET /health` beside them. The
machines these run on drift by a third within minutes, which moves `bench/run.py`'s HTTP
figures by as much; an A/B of one change is better made here, alternating the two versions
(`git stash`) a few times in a row. `--profile CASE` prints cProfile's top functions for it
(`--profile-sort cumulative --profile-top 80` for another view).

A data scientist with a bearer token; an experiment with a tag, a run with a dataset input,
a registered model with version 1 in Production and the alias `champion`; warm caches, as a
worker's after its first requests. The database named by DATABASE_URL is dropped and
recreated (PostgreSQL) or a fresh SQLite file is used. The request log goes to stderr."""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from audit_bench import setup  # noqa: E402

OPEN_POLICY = {
    "required_tags": [],
    "metric_gates": [],
    "staging_approvals": 0,
    "production_approvals": 0,
    "rollback_approvals": 0,
    "require_model_card": False,
    "protected_aliases": [],
}


def _environ(method: str, path: str, auth: str, body: bytes = b"", query: str = "") -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "CONTENT_TYPE": "application/json" if body.startswith(b"{") else "application/octet-stream",
        "HTTP_AUTHORIZATION": auth,
    }


def seed() -> dict[str, str]:
    """The caller and the objects the cases name, made through the services and the API."""
    from django.test import Client

    from accounts import services as accounts
    from governance.models import ModelPolicy
    from registry import services as registry
    from registry.models import RegisteredModel

    user = accounts.user_create(username="bench", role="data-scientist", password="bench-pw-1")
    auth = f"Bearer {accounts.token_create(user=user, name='bench')[1]}"
    client = Client(HTTP_AUTHORIZATION=auth, HTTP_HOST="127.0.0.1")

    def post(route: str, body: dict) -> dict:
        response = client.post(f"/api/2.0/mlflow/{route}", body, content_type="application/json")
        assert response.status_code == 200, (route, response.content)
        return response.json()

    experiment_id = post("experiments/create", {"name": "in-process"})["experiment_id"]
    post(
        "experiments/set-experiment-tag",
        {"experiment_id": experiment_id, "key": "team", "value": "b"},
    )
    run_id = post("runs/create", {"experiment_id": experiment_id, "start_time": 1})["run"]["info"][
        "run_id"
    ]
    dataset = {"name": "ds", "digest": "d1", "source_type": "local", "source": "/data/ds"}
    post("runs/log-inputs", {"run_id": run_id, "datasets": [{"tags": [], "dataset": dataset}]})
    post("registered-models/create", {"name": "in-process-model"})
    ModelPolicy.objects.update_or_create(
        model=RegisteredModel.objects.get(name="in-process-model"), defaults=OPEN_POLICY
    )
    post(
        "model-versions/create",
        {"name": "in-process-model", "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    for stage in ("Staging", "Production"):
        registry.model_version_transition_stage(name="in-process-model", version="1", stage=stage)
    post(
        "registered-models/alias", {"name": "in-process-model", "alias": "champion", "version": "1"}
    )
    return {"auth": auth, "experiment_id": experiment_id, "run_id": run_id}


def cases(world: dict[str, str]) -> dict[str, Callable[[], dict]]:
    auth, exp, run = world["auth"], world["experiment_id"], world["run_id"]
    files = f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts"
    blob = os.urandom(64 * 1024)
    steps = itertools.count()
    names = itertools.count()
    mlflow = "/api/2.0/mlflow"
    return {
        "health": lambda: _environ("GET", "/health", ""),
        "experiments-get": lambda: _environ(
            "GET", f"{mlflow}/experiments/get", auth, query=f"experiment_id={exp}"
        ),
        "runs-get": lambda: _environ("GET", f"{mlflow}/runs/get", auth, query=f"run_id={run}"),
        "log-metric": lambda: _environ(
            "POST",
            f"{mlflow}/runs/log-metric",
            auth,
            b'{"run_id": "%s", "key": "loss", "value": 0.5, "timestamp": 1, "step": %d}'
            % (run.encode(), next(steps)),
        ),
        "latest-versions": lambda: _environ(
            "GET",
            f"{mlflow}/registered-models/get-latest-versions",
            auth,
            query="name=in-process-model&stages=Production",
        ),
        "resolve": lambda: _environ(
            "GET", "/api/v1/resolve", auth, query="uri=models:/in-process-model/Production"
        ),
        "upload": lambda: _environ("PUT", f"{files}/small/f{next(names)}.bin", auth, blob),
        "download": lambda: _environ("GET", f"{files}/small/f0.bin", auth),
    }


def create_run(app, world: dict[str, str], seq: int) -> None:
    """bench/run.py's create-run sequence: runs/create with two tags, a log-batch of 10
    metrics, 10 params and 2 tags, runs/update to FINISHED (three requests, three commits)."""
    auth, mlflow, when = world["auth"], "/api/2.0/mlflow", 1_700_000_000_000 + seq
    created = {
        "experiment_id": world["experiment_id"],
        "start_time": when,
        "run_name": f"cr-{seq}",
        "tags": [{"key": "team", "value": "bench"}, {"key": "seq", "value": str(seq)}],
    }
    body = call(app, _environ("POST", f"{mlflow}/runs/create", auth, json.dumps(created).encode()))
    run_id = json.loads(body)["run"]["info"]["run_id"]
    batch = {
        "run_id": run_id,
        "metrics": [
            {"key": f"m{k}", "value": k * 0.5 + seq, "timestamp": when, "step": 0}
            for k in range(10)
        ],
        "params": [{"key": f"p{k}", "value": str(seq * 10 + k)} for k in range(10)],
        "tags": [{"key": "stage", "value": "bench"}, {"key": "host", "value": "local"}],
    }
    call(app, _environ("POST", f"{mlflow}/runs/log-batch", auth, json.dumps(batch).encode()))
    finished = {"run_id": run_id, "status": "FINISHED", "end_time": when + 5}
    call(app, _environ("POST", f"{mlflow}/runs/update", auth, json.dumps(finished).encode()))


def call(app, environ: dict) -> bytes:
    statuses: list[str] = []
    response = app(environ, lambda status, headers, *args: statuses.append(status))
    body = b"".join(response)
    if hasattr(response, "close"):
        response.close()
    if not statuses[0].startswith("200"):
        raise SystemExit(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {statuses[0]}")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="health,experiments-get,runs-get,log-metric,"
                        "latest-versions,resolve,upload,download")  # fmt: skip
    parser.add_argument("--n", type=int, default=1000, help="requests per round")
    parser.add_argument("--reps", type=int, default=5, help="rounds; the best mean is kept")
    parser.add_argument("--profile", default="", help="a case to profile with cProfile")
    parser.add_argument("--profile-sort", default="tottime", help="pstats sort key")
    parser.add_argument("--profile-top", type=int, default=30, help="functions printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CUSTODY_ARTIFACT_ROOT", str(Path(tmp) / "artifacts"))
        database = setup(Path(tmp))
        from django.core.handlers.wsgi import WSGIHandler

        world = seed()
        app = WSGIHandler()
        makers = cases(world)
        sequences = itertools.count()
        requests: dict[str, Callable[[], object]] = {
            name: (lambda make=make: call(app, make())) for name, make in makers.items()
        }
        requests["create-run"] = lambda: create_run(app, world, next(sequences))
        chosen = [name.strip() for name in args.cases.split(",") if name.strip()]
        unknown = sorted(set(chosen) - set(requests))
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; choose from {sorted(requests)}")
        if "download" in chosen:
            call(
                app, _environ("PUT", makers["download"]()["PATH_INFO"], world["auth"], b"x" * 65536)
            )
        best: dict[str, float] = {}
        for _ in range(args.reps):
            for name in ["health", *(c for c in chosen if c != "health")]:
                for _ in range(100):  # warm: caches, prepared statements
                    requests[name]()
                started = time.perf_counter()
                for _ in range(args.n):
                    requests[name]()
                mean = (time.perf_counter() - started) / args.n * 1e6
                best[name] = min(best.get(name, mean), mean)
        print(f"# In process ({database}; best mean of {args.reps} x {args.n} requests)\n")
        print("| case | µs per request | x /health |\n|---|---|---|")
        for name, micros in best.items():
            print(f"| {name} | {micros:,.0f} | {micros / best['health']:.2f} |")
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.n):
                requests[args.profile]()
            profile.disable()
            pstats.Stats(profile).sort_stats(args.profile_sort).print_stats(args.profile_top)


if __name__ == "__main__":
    main()

"""The single-Production invariant under concurrent promotions (PostgreSQL, a live gunicorn
server, many threads), and the archiving task on a real Celery worker with Redis."""

from __future__ import annotations

import threading
import time

import pytest
import requests


def _session(server) -> requests.Session:
    session = requests.Session()
    session.auth = (server.username, server.password)
    return session


@pytest.mark.postgres
def test_concurrent_promotions_leave_exactly_one_production(live_server_process, run_in_live):
    server = live_server_process
    if not server.database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL row locks; run with DATABASE_URL=postgres://...")
    import psycopg

    api = f"{server.url}/api/2.0/mlflow"
    http = _session(server)
    name = f"race-{int(time.time() * 1000)}"
    assert http.post(f"{api}/registered-models/create", json={"name": name}).ok
    server.open_policy(name)  # the race is under test, not the review workflow
    threads_n, rounds = 6, 5
    for _ in range(threads_n):
        created = http.post(
            f"{api}/model-versions/create",
            json={"name": name, "source": f"runs:/{run_in_live}/model"},
        )
        assert created.ok, created.text
    versions = [str(v) for v in range(1, threads_n + 1)]

    def transition(version: str, stage: str, session=http) -> requests.Response:
        return session.post(
            f"{api}/model-versions/transition-stage",
            json={
                "name": name,
                "version": version,
                "stage": stage,
                "archive_existing_versions": False,
            },
        )

    violations, samples = [], [0]
    stop = threading.Event()
    conninfo = server.database_url.replace("postgres://", "postgresql://")

    def sampler():
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM registry_modelversion mv JOIN "
                    "registry_registeredmodel rm ON rm.id = mv.registered_model_id "
                    "WHERE rm.name = %s AND mv.current_stage = 'Production'",
                    [name],
                ).fetchone()
                samples[0] += 1
                if count > 1:
                    violations.append(count)

    watcher = threading.Thread(target=sampler)
    watcher.start()
    statuses = []
    try:
        for _ in range(rounds):
            for version in versions:  # every version back to Staging for the round
                stage = http.get(
                    f"{api}/model-versions/get", params={"name": name, "version": version}
                ).json()
                current = stage["model_version"]["current_stage"]
                if current == "Archived":
                    assert transition(version, "None").ok
                    current = "None"
                if current in ("None", "Production"):
                    assert transition(version, "Staging").ok
            barrier = threading.Barrier(threads_n)

            def promote(version: str, barrier: threading.Barrier = barrier):
                session = _session(server)
                barrier.wait()
                statuses.append(transition(version, "Production", session).status_code)

            workers = [threading.Thread(target=promote, args=(v,)) for v in versions]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            stages = [
                http.get(f"{api}/model-versions/get", params={"name": name, "version": v}).json()[
                    "model_version"
                ]["current_stage"]
                for v in versions
            ]
            assert stages.count("Production") == 1, stages
    finally:
        stop.set()
        watcher.join()
    assert not violations, f"two Production versions seen {len(violations)} times"
    assert samples[0] > 10
    assert all(s == 200 or 400 <= s < 500 for s in statuses), statuses
    assert len(statuses) == threads_n * rounds


@pytest.mark.postgres
def test_a_rollback_racing_a_promotion_leaves_exactly_one_production(
    live_server_process, run_in_live
):
    """Version 1 (in Production before, now archived) rolled back while version 3 is promoted
    from Staging, at the same instant, several rounds: each ends with one Production version,
    and the other one archived by whichever move came second."""
    server = live_server_process
    if not server.database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL row locks; run with DATABASE_URL=postgres://...")
    api = f"{server.url}/api/2.0/mlflow"
    http = _session(server)
    name = f"rollback-race-{int(time.time() * 1000)}"
    assert http.post(f"{api}/registered-models/create", json={"name": name}).ok
    server.open_policy(name)  # rollback_approvals 0: both moves apply at once
    for _ in range(3):
        created = http.post(
            f"{api}/model-versions/create",
            json={"name": name, "source": f"runs:/{run_in_live}/model"},
        )
        assert created.ok, created.text

    def transition(version: str, stage: str, session=http) -> requests.Response:
        return session.post(
            f"{api}/model-versions/transition-stage",
            json={"name": name, "version": version, "stage": stage},
        )

    def stages() -> dict[str, str]:
        return {
            v: http.get(f"{api}/model-versions/get", params={"name": name, "version": v}).json()[
                "model_version"
            ]["current_stage"]
            for v in ("1", "2", "3")
        }

    for version in ("1", "2"):  # v1 in Production, then replaced by v2
        assert transition(version, "Staging").ok
        assert transition(version, "Production").ok
    assert stages()["1"] == "Archived"
    statuses: list[int] = []
    for _ in range(6):
        current = stages()
        for version, stage in current.items():  # v1 archived, v3 in Staging, the rest aside
            if version == "1" and stage == "Production":
                assert transition("1", "Archived").ok
            if version == "3":
                if stage == "Archived":
                    assert transition("3", "None").ok
                if stage != "Staging":
                    assert transition("3", "Staging").ok
        barrier = threading.Barrier(2)

        def move(version: str, target: str, barrier: threading.Barrier = barrier) -> None:
            session = _session(server)
            barrier.wait()
            statuses.append(transition(version, target, session).status_code)

        workers = [
            threading.Thread(target=move, args=("1", "Production")),
            threading.Thread(target=move, args=("3", "Production")),
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        after = stages()
        assert list(after.values()).count("Production") == 1, after
    assert all(s == 200 or 400 <= s < 500 for s in statuses), statuses
    assert statuses.count(200) >= 6


@pytest.fixture
def run_in_live(live_server_process) -> str:
    http = _session(live_server_process)
    api = f"{live_server_process.url}/api/2.0/mlflow"
    created = http.post(f"{api}/runs/create", json={"experiment_id": "0"})
    assert created.ok, created.text
    return created.json()["run"]["info"]["run_id"]


@pytest.fixture
def redis_broker():
    import redis

    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (make test starts it; CI has it)")
    return url


def _reset_producers(app) -> None:
    # Eager mode already built producers on the in-memory broker; drop them so messages go to
    # the broker configured now (kombu caches both the connection pool and the producer pool).
    app.close()
    app.amqp._producer_pool = None


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_archiving_runs_on_a_real_worker(redis_broker, settings):
    from celery.contrib.testing.worker import start_worker
    from django.db import OperationalError

    from config.celery import app
    from registry import services, tasks  # noqa: F401  (registered before the worker starts)
    from registry.models import ModelVersion
    from tracking import services as tracking

    previous = dict(app.conf)
    app.conf.update(task_always_eager=False, broker_url=redis_broker, result_backend=redis_broker)
    _reset_producers(app)
    try:
        run = tracking.run_create(
            # Its own experiment: an earlier transactional test may have flushed the default one.
            experiment_id=str(tracking.experiment_create(name="worker").experiment_id),
            user_id="t",
            run_name="r",
            start_time=1,
            tags=[],
        )
        services.registered_model_create(name="worker-model")
        for _ in range(3):
            services.model_version_create(name="worker-model", source=f"runs:/{run.run_id}/m")
        services.model_version_transition_stage(name="worker-model", version=1, stage="Staging")
        services.model_version_transition_stage(name="worker-model", version=2, stage="Staging")
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            services.model_version_transition_stage(
                name="worker-model", version=2, stage="Production"
            )
            deadline, stage = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                try:
                    stage = ModelVersion.objects.get(
                        registered_model__name="worker-model", version=1
                    ).current_stage
                except OperationalError:
                    # SQLite's shared-cache test database locks a table while the worker
                    # thread writes it; read again (PostgreSQL never answers this).
                    stage = None
                if stage == "Archived":
                    break
                time.sleep(0.2)
        assert stage == "Archived"
        assert (
            ModelVersion.objects.get(registered_model__name="worker-model", version=2).current_stage
            == "Production"
        )
    finally:
        app.conf.update(
            task_always_eager=previous["task_always_eager"],
            broker_url=previous["broker_url"],
            result_backend=previous["result_backend"],
        )
        _reset_producers(app)


@pytest.mark.postgres
def test_concurrent_deployments_of_one_endpoint_leave_one_open(live_server_process, run_in_live):
    server = live_server_process
    if not server.database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL row locks; run with DATABASE_URL=postgres://...")
    api, v1 = f"{server.url}/api/2.0/mlflow", f"{server.url}/api/v1"
    http = _session(server)
    name = f"deploy-{int(time.time() * 1000)}"
    assert http.post(f"{api}/registered-models/create", json={"name": name}).ok
    for _ in range(2):
        assert http.post(
            f"{api}/model-versions/create",
            json={"name": name, "source": f"runs:/{run_in_live}/model"},
        ).ok
    endpoint = f"/predict-{name}"
    barrier = threading.Barrier(8)
    statuses = []

    def deploy(version: int):
        session = _session(server)
        barrier.wait()
        response = session.post(
            f"{v1}/deployments",
            json={"endpoint": endpoint, "model_uri": f"models:/{name}/{version}"},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=deploy, args=(1 + i % 2,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    current = http.get(f"{v1}/deployments", params={"endpoint": endpoint, "current": "true"})
    assert len(current.json()) == 1

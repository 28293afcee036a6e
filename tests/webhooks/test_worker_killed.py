"""A real Celery worker (subprocess, on a private Redis) is killed by PID in the middle of a
delivery and a new one started: every event reaches the receiver's idempotency check exactly
once, in order, nothing lost. The interrupted delivery is sent again with the same delivery
id once its lease ends (the outbox's redelivery), and the receiver drops the repeat."""

from __future__ import annotations

import shutil
import uuid

import pytest
import requests

from tests.conftest import OPEN_POLICY, LiveServer, fresh_database
from tests.outbox.test_faults import Celery, PrivateRedis

pytestmark = pytest.mark.celery

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture
def deployment(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("custody-webhook-worker")
    with fresh_database(workdir, "custody_webhook_worker") as database_url:
        broker = PrivateRedis(workdir)
        broker.start()
        server = LiveServer(
            workdir,
            database_url,
            {"LOG_LEVEL": "INFO", "CUSTODY_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"},
        )
        server.env["REDIS_URL"] = broker.url
        server.start()
        started: list[Celery] = []

        def celery(kind: str) -> Celery:
            process = Celery(server, kind)
            process.start()
            started.append(process)
            return process

        try:
            yield server, celery
        finally:
            for process in started:
                process.stop()
            server.stop()
            broker.stop()


def test_a_worker_killed_mid_delivery_loses_nothing_and_repeats_nothing(deployment, receiver):
    server, celery = deployment
    worker = celery("worker")
    celery("beat")
    worker.wait_for("ready.")
    hook = receiver(secret=SECRET, hold_first=15.0)
    http = requests.Session()
    http.auth = (server.username, server.password)
    v1, api = f"{server.url}/api/v1", f"{server.url}/api/2.0/mlflow"
    created = http.post(
        f"{v1}/webhooks",
        json={"name": "cd", "url": hook.url, "secret": SECRET, "events": ["model_version.created"]},
    )
    assert created.status_code == 201, created.text
    assert http.post(f"{api}/registered-models/create", json={"name": "m"}).ok
    assert http.put(f"{v1}/models/m/policy", json=OPEN_POLICY).status_code == 200
    run = http.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    for _ in range(3):
        version = http.post(
            f"{api}/model-versions/create",
            json={"name": "m", "source": f"runs:/{run['run_id']}/model"},
        )
        assert version.ok, version.text

    # The worker is sending the first delivery; the receiver has processed it and not yet
    # answered. Kill the worker by its PID.
    assert hook.first_held.wait(timeout=90), "the first delivery never arrived"
    worker.kill()
    celery("worker").wait_for("ready.")

    arrivals = hook.wait_for(3, timeout=150)
    assert [a.body["data"]["version"] for a in arrivals] == ["1", "2", "3"]  # in order
    assert all(a.signature_ok for a in hook.arrivals)
    first = arrivals[0].delivery_id
    repeats = [a.delivery_id for a in hook.arrivals if a.duplicate]
    assert repeats == [first]  # sent again after the kill, dropped by the receiver
    log = http.get(f"{v1}/webhooks/{created.json()['webhook_id']}/deliveries").json()
    by_id = {d["delivery_id"]: d for d in log["deliveries"]}
    assert {d["status"] for d in by_id.values()} == {"delivered"}
    assert by_id[first]["attempts"] == 2
    assert sorted(by_id) == sorted(a.delivery_id for a in arrivals)

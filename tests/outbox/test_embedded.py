"""The embedded default (no Redis, tasks in-process, no beat): gunicorn's own relay thread
picks up outbox jobs that are due later, such as archiving after a grace period."""

from __future__ import annotations

import time

import requests

from tests.conftest import LiveServer


def test_the_embedded_default_relays_its_own_outbox(tmp_path):
    server = LiveServer(
        tmp_path,
        f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        {"CUSTODY_ARCHIVE_GRACE_SECONDS": "2", "CUSTODY_INPROCESS_RELAY_SECONDS": "1"},
    )
    server.start()
    try:
        http = requests.Session()
        http.auth = (server.username, server.password)
        api = f"{server.url}/api/2.0/mlflow"
        run_id = http.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"][
            "run_id"
        ]
        assert http.post(f"{api}/registered-models/create", json={"name": "m"}).ok
        server.open_policy("m")
        for _ in range(2):
            assert http.post(
                f"{api}/model-versions/create", json={"name": "m", "source": f"runs:/{run_id}/x"}
            ).ok

        def move(version: int, stage: str) -> requests.Response:
            return http.post(
                f"{api}/model-versions/transition-stage",
                json={"name": "m", "version": str(version), "stage": stage},
            )

        def stage_of(version: int) -> str:
            got = http.get(f"{api}/model-versions/get", params={"name": "m", "version": version})
            return got.json()["model_version"]["current_stage"]

        assert move(1, "Staging").ok and move(2, "Staging").ok
        promoted_at = time.monotonic()
        assert move(2, "Production").status_code == 200
        assert stage_of(1) == "Staging"  # the grace period holds it back
        while stage_of(1) != "Archived":
            assert time.monotonic() - promoted_at < 30, server.server_log()[-3000:]
            time.sleep(0.2)
        elapsed = time.monotonic() - promoted_at
        assert elapsed >= 2
        print(f"\nembedded: archived {elapsed:.1f} s after the promotion (grace 2 s)")
    finally:
        server.stop()

"""Backup and restore as docs/operations.md describes them (scripts/backup.sh and
scripts/restore.sh): a PostgreSQL dump and the artifact directory, restored into a new
database and directory, where the audit chain and its signed checkpoints verify, the
registry is as it was and the artifacts read back. The server backed up runs the embedded
default (no Redis) with a one-second checkpoint schedule, so the signed checkpoints in the
backup were made by the in-process periodic runner that `make run` uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.conftest import OPEN_POLICY, ROOT, LiveServer, fresh_database

pytestmark = pytest.mark.postgres

METRICS_TOKEN = "backup-" + uuid.uuid4().hex


def _script(name: str, target: str, database_url: str, artifact_root, env: dict) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / name), target],
        cwd=ROOT,
        env={
            **env,
            "DATABASE_URL": database_url,
            "CUSTODY_ARTIFACT_ROOT": str(artifact_root),
            "PYTHON": sys.executable,
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_backup_restores_into_a_new_database_with_a_verified_audit_chain(tmp_path):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("backup and restore are documented for PostgreSQL: set DATABASE_URL")
    name = f"kept-{uuid.uuid4().hex[:6]}"
    payload = os.urandom(4096)
    with fresh_database(tmp_path, "custody_backup") as source_url:
        source = LiveServer(
            tmp_path / "source",
            source_url,
            {"CUSTODY_CHECKPOINT_SECONDS": "1", "CUSTODY_METRICS_TOKEN": METRICS_TOKEN},
        )
        (tmp_path / "source").mkdir()
        source.start()
        try:
            http = requests.Session()
            http.auth = (source.username, source.password)
            api = f"{source.url}/api/2.0/mlflow"
            run = http.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]
            target = run["info"]["artifact_uri"].replace("mlflow-artifacts:/", "")
            artifact = f"/api/2.0/mlflow-artifacts/artifacts/{target}/model.bin"
            assert http.put(f"{source.url}{artifact}", data=payload).status_code == 200
            assert http.post(f"{api}/registered-models/create", json={"name": name}).ok
            policy = http.put(f"{source.url}/api/v1/models/{name}/policy", json=OPEN_POLICY)
            assert policy.status_code == 200, policy.text
            source_uri = f"runs:/{run['info']['run_id']}/model.bin"
            for stage in ("Staging", "Production"):
                if stage == "Staging":
                    created = http.post(
                        f"{api}/model-versions/create", json={"name": name, "source": source_uri}
                    )
                    assert created.status_code == 200, created.text
                moved = http.post(
                    f"{api}/model-versions/transition-stage",
                    json={"name": name, "version": "1", "stage": stage},
                )
                assert moved.status_code == 200, moved.text

            # The in-process schedule signs a checkpoint of the head within a few seconds.
            deadline = time.monotonic() + 60
            while True:
                verified = http.get(f"{source.url}/api/v1/audit/verify").json()
                head = requests.get(  # not `http`: its basic auth would replace the bearer
                    f"{source.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                ).text
                if verified["checkpoints_checked"] and "custody_audit_checkpoint_age" in head:
                    break
                assert time.monotonic() < deadline, (verified, source.server_log()[-3000:])
                time.sleep(0.5)
            assert verified["ok"] is True

            backup = tmp_path / "backup"
            _script("backup.sh", str(backup), source_url, source.artifact_root, source.env)
        finally:
            source.stop()
        before = json.loads((backup / "audit-before.json").read_text())
        assert before["ok"] is True and before["checkpoints_checked"] >= 1

        with fresh_database(tmp_path, "custody_restored") as restored_url:
            (tmp_path / "restored").mkdir()
            restored = LiveServer(tmp_path / "restored", restored_url)
            restored.env["SECRET_KEY"] = source.env["SECRET_KEY"]  # checkpoints are signed
            _script("restore.sh", str(backup), restored_url, restored.artifact_root, restored.env)
            after = json.loads((backup / "audit-after-restore.json").read_text())
            assert after["ok"] is True
            assert (after["last_seq"], after["checkpoints_checked"]) == (
                before["last_seq"],
                before["checkpoints_checked"],
            )

            restored.username = "restored-admin"  # the backed-up admin exists already
            restored.start()
            try:
                http = requests.Session()
                http.auth = (source.username, source.password)  # the restored accounts
                got = http.get(
                    f"{restored.url}/api/2.0/mlflow/model-versions/get",
                    params={"name": name, "version": "1"},
                )
                assert got.status_code == 200, got.text
                assert got.json()["model_version"]["current_stage"] == "Production"
                read = http.get(f"{restored.url}{artifact}")
                assert read.status_code == 200 and read.content == payload
                verified = http.get(f"{restored.url}/api/v1/audit/verify").json()
                assert verified["ok"] is True and verified["last_seq"] >= before["last_seq"]
            finally:
                restored.stop()

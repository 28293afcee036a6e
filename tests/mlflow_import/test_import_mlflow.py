"""`manage.py import_mlflow` against a real `mlflow server` (the version the bench uses, from
bench/.mlflow-venv), filled and then compared with the real MLflow client on both servers.

One source and one Custody server serve the whole module: the first import is killed by
PID while it copies artifacts and then resumed; the result is compared object by object,
point by point and byte by byte; a further import must change nothing."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, LiveServer, running_live_server

# The first run creates bench/.mlflow-venv (uv, from PyPI); a loaded machine is slow too.
pytestmark = [pytest.mark.mlflow_client, pytest.mark.timeout(1800)]

MODEL = "imp-fraud"
MANY_FILES = 80  # enough artifact files that a kill lands while they are being copied


@pytest.fixture(scope="module")
def source_server(tmp_path_factory):
    """`mlflow server` 3.17.2 from bench/.mlflow-venv (created with uv from PyPI on first
    use), on a SQLite file so it needs no database of its own."""
    sys.path.insert(0, str(ROOT))
    from bench import servers

    if shutil.which("uv") is None and (Path.home() / ".local/bin/uv").exists():
        # scripts/bootstrap.sh installs uv there without putting it on PATH.
        os.environ["PATH"] = f"{Path.home() / '.local/bin'}{os.pathsep}{os.environ['PATH']}"
    workdir = tmp_path_factory.mktemp("mlflow-source")
    server = servers.start_mlflow(
        workdir, print, backend_store_uri=f"sqlite:///{workdir / 'mlflow.db'}", workers=2
    )
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def custody(tmp_path_factory):
    """The Custody server imported into: its own, as the import fills it."""
    with running_live_server(tmp_path_factory.mktemp("custody-import"), "custody_import") as server:
        yield server


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _fill(uri: str, workdir: Path) -> dict:
    """Experiments (one deleted), nested runs with params, tags, metric histories (a NaN
    point included), a dataset input, artifacts, a deleted run, a logged sklearn model
    registered three times, versions in Staging, Production and Archived, and an alias."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = _client(uri)
    exp_id = client.create_experiment("imp-fraud-training", tags={"team": "risk", "tier": "1"})
    gone = client.create_experiment("imp-old-experiments")
    client.delete_experiment(gone)
    (workdir / "data").mkdir()
    (workdir / "data" / "notes.txt").write_text("features: amount, hour\n")
    (workdir / "data" / "sub").mkdir()
    (workdir / "data" / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    many = workdir / "many"
    many.mkdir()
    for i in range(MANY_FILES):
        (many / f"part-{i:04d}.txt").write_text(f"shard {i}\n" * 50)

    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(X, columns=["amount", "hour", "risk"]).assign(label=y)
    mlflow.set_experiment(experiment_id=exp_id)
    runs = []
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_params({"search": "grid", "folds": "3"})
        mlflow.set_tags({"dataset_version": "2024-06", "git_commit": "a1b2c3d"})
        mlflow.log_artifacts(str(workdir / "data"), artifact_path="inputs")
        mlflow.log_artifacts(str(many), artifact_path="shards")
        for c in (0.1, 1.0, 10.0):
            with mlflow.start_run(run_name=f"C={c}", nested=True) as child:
                mlflow.log_input(mlflow.data.from_pandas(frame, name="fraud-2024-06"), "training")
                mlflow.log_param("C", c)
                mlflow.set_tags({"dataset_version": "2024-06", "git_commit": "a1b2c3d",
                                 "triggered_by": "ci"})  # fmt: skip
                for step in range(25):
                    mlflow.log_metric("loss", 1.0 / (step + 1) + c / 100, step=step)
                mlflow.log_metric("auc", 0.9 + c / 1000, step=0)
                mlflow.log_metric("auc", 0.91 + c / 1000, step=1)
                mlflow.log_metric("odd", float("nan"), step=0)
                model = LogisticRegression(C=c).fit(X, y)
                # Requirements given, not inferred: inference imports the model in a
                # subprocess, which takes most of a minute on a loaded machine.
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=MODEL,
                    pip_requirements=["scikit-learn"],
                )
                runs.append(child.info.run_id)
    with mlflow.start_run(run_name="mistake") as mistake:
        mlflow.log_metric("loss", 3.0)
    client.delete_run(mistake.info.run_id)

    client.update_registered_model(MODEL, description="fraud scorer")
    client.set_registered_model_tag(MODEL, "owner", "risk-team")
    client.transition_model_version_stage(MODEL, "1", "Production")
    client.transition_model_version_stage(MODEL, "1", "Archived")
    client.transition_model_version_stage(MODEL, "2", "Production")
    client.transition_model_version_stage(MODEL, "3", "Staging")
    client.update_model_version(MODEL, "2", description="C=1.0, approved by the risk board")
    client.set_model_version_tag(MODEL, "2", "validated", "yes")
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "challenger", "3")
    return {"experiment_id": exp_id, "parent": parent.info.run_id, "runs": runs, "X": X}


def _import(custody: LiveServer, source: str, report: Path, *extra: str):
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "import_mlflow",
            "--tracking-uri",
            source,
            "--report",
            str(report),
            "--no-progress",
            *extra,
        ],  # fmt: skip
        cwd=ROOT,
        env=custody.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _value(v: float):
    return "nan" if math.isnan(v) else v


def _runs(client, experiment_ids):
    from mlflow.entities import ViewType

    found = {}
    for run in client.search_runs(experiment_ids, run_view_type=ViewType.ALL, max_results=1000):
        info, data = run.info, run.data
        found[info.run_id] = {
            "experiment_id": info.experiment_id,
            "name": info.run_name,
            "user": info.user_id,
            "status": info.status,
            "start": info.start_time,
            "end": info.end_time,
            "lifecycle": info.lifecycle_stage,
            "params": data.params,
            "tags": data.tags,
            "metrics": {k: _value(v) for k, v in data.metrics.items()},
            "datasets": sorted(
                (
                    d.dataset.name,
                    d.dataset.digest,
                    d.dataset.source_type,
                    d.dataset.schema,
                    tuple(sorted((t.key, t.value) for t in d.tags)),
                )  # fmt: skip
                for d in (run.inputs.dataset_inputs if run.inputs else [])
            ),
            "histories": {
                key: sorted(
                    (m.step, m.timestamp, _value(m.value))
                    for m in client.get_metric_history(info.run_id, key)
                )
                for key in data.metrics
            },
        }
    return found


def _artifacts(client, run_id: str, dest: Path) -> dict[str, str]:
    """Every file of a run as {path: sha256}, downloaded through the client."""
    files = {}
    pending = [None]
    while pending:
        for item in client.list_artifacts(run_id, pending.pop()):
            if item.is_dir:
                pending.append(item.path)
            else:
                local = client.download_artifacts(run_id, item.path, str(dest))
                files[item.path] = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    return files


def _registry(client):
    model = client.get_registered_model(MODEL)
    versions = sorted(
        (
            v.version,
            v.current_stage,
            v.run_id,
            v.description,
            tuple(sorted(v.tags.items())),
            v.creation_timestamp,
            v.user_id,
            v.model_id,
        )
        for v in client.search_model_versions(f"name='{MODEL}'")
    )
    return {
        "description": model.description,
        "tags": model.tags,
        "aliases": model.aliases,
        "created": model.creation_timestamp,
        "versions": versions,
    }


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_import_killed_resumed_matches_and_reimport_is_noop(
    source_server, custody, tmp_path, monkeypatch
):
    import mlflow
    from mlflow.entities import ViewType

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    filled = _fill(source_server, tmp_path)
    # Custody's credentials; the source has no authentication and ignores them.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", custody.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", custody.password)

    auth = (custody.username, custody.password)

    def audit_trail() -> list[str]:
        lines = requests.get(
            f"{custody.url}/api/v1/audit/events", params={"export": "jsonl"}, auth=auth, timeout=60
        ).text.splitlines()
        return [line for line in lines if '"seq"' in line and "custody_audit" not in line]

    # 0. A dry run says what would come and writes nothing; a URI that is not http(s) is
    # refused with a message.
    report = tmp_path / "report.json"
    untouched = audit_trail()
    dry = _import(custody, source_server, report, "--dry-run")
    output = dry.communicate(timeout=600)[0]
    assert dry.returncode == 0, output
    data = _report(report)
    assert data["dry_run"] is True
    assert data["counts"]["runs"] == {"source": 5, "to_import": 5}
    assert data["counts"]["registered_models"] == {"source": 1, "to_import": 1}
    assert audit_trail() == untouched
    assert _client(custody.url).get_experiment_by_name("imp-fraud-training") is None
    refused = _import(custody, "file:///etc", report)
    output = refused.communicate(timeout=120)[0]
    assert refused.returncode != 0
    assert "must be an http(s):// URL" in output
    report.unlink()

    # 1. An import killed (SIGKILL, by PID) while it copies the run's artifact files.
    first = _import(custody, source_server, report, "--workers", "1")
    shards = custody.artifact_root / filled["experiment_id"] / filled["parent"] / "artifacts/shards"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if shards.exists() and len(list(shards.iterdir())) >= MANY_FILES // 3:
            break
        time.sleep(0.01)
    assert first.poll() is None, (
        f"the import ended before it could be killed:\n{first.stdout.read()}"
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    copied = len(list(shards.iterdir()))
    assert copied < MANY_FILES, "the kill came after every file was copied"
    # Every file the import had written by then, the runs' other artifacts (models) included:
    # they are copied in listing order, some before the shards.
    written = sum(1 for p in custody.artifact_root.rglob("*") if p.is_file())
    assert not report.exists()

    # 2. Resumed: everything the kill left undone, nothing twice.
    resumed = _import(custody, source_server, report, "--resume")
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    data = _report(report)
    assert data["verified"] is True, output
    assert data["skipped"] == [], data["skipped"]
    assert data["counts"]["runs"]["unchanged"] == 5  # committed before the kill
    # Files are mapped every 10, so the files mapped before the kill are not copied again.
    # How many of the written files were mapped by then depends on timing, so only the
    # skipping itself is asserted, bounded by every file written before the kill (a bound
    # by the shards alone failed at 30 against 28: model files had been mapped too).
    unchanged = data["counts"]["artifacts"].get("unchanged", 0)
    assert 0 < unchanged <= written
    assert (
        data["counts"]["artifacts"]["imported"] == data["counts"]["artifacts"]["source"] - unchanged
    )
    for kind in ("experiments", "runs", "logged_models", "artifacts", "model_versions", "aliases"):
        assert data["counts"][kind]["source"] == data["counts"][kind]["custody"], (kind, data)
    assert data["counts"]["metric_points"]["source"] == data["counts"]["metric_points"]["custody"]

    # 3. What the real client sees on both servers is the same.
    source, target = _client(source_server), _client(custody.url)
    source_exps = {
        e.experiment_id: (e.name, e.lifecycle_stage, e.tags)
        for e in source.search_experiments(view_type=ViewType.ALL)
    }
    target_exps = {
        e.experiment_id: (e.name, e.lifecycle_stage, e.tags)
        for e in target.search_experiments(view_type=ViewType.ALL)
    }
    assert source_exps == target_exps  # ids kept: Custody's were free (and "Default" is 0)
    ids = list(source_exps)
    source_runs, target_runs = _runs(source, ids), _runs(target, ids)
    assert set(source_runs) == set(target_runs)
    assert len(source_runs) == 5
    for run_id, expected in source_runs.items():
        assert target_runs[run_id] == expected, run_id
    assert target_runs[filled["runs"][0]]["histories"]["loss"][24][0] == 24
    assert target_runs[filled["runs"][0]]["metrics"]["odd"] == "nan"
    assert [r["name"] for r in target_runs.values() if r["lifecycle"] == "deleted"] == ["mistake"]
    for run_id in [filled["parent"], *filled["runs"]]:
        expected = _artifacts(source, run_id, tmp_path / "a" / run_id)
        assert _artifacts(target, run_id, tmp_path / "b" / run_id) == expected
        if run_id == filled["parent"]:
            assert len(expected) == MANY_FILES + 2

    source_models = {
        m.model_id: (m.name, m.source_run_id, m.tags, m.params, m.status)
        for m in source.search_logged_models(experiment_ids=[filled["experiment_id"]])
    }
    target_models = {
        m.model_id: (m.name, m.source_run_id, m.tags, m.params, m.status)
        for m in target.search_logged_models(experiment_ids=[filled["experiment_id"]])
    }
    assert len(source_models) == 3
    assert target_models == source_models

    expected_registry = _registry(source)
    assert _registry(target) == expected_registry
    stages = {v[0]: v[1] for v in expected_registry["versions"]}
    assert stages == {"1": "Archived", "2": "Production", "3": "Staging"}
    assert expected_registry["aliases"] == {"champion": "2", "challenger": "3"}

    # The served model is the same model: same files, same predictions.
    mlflow.set_tracking_uri(custody.url)
    mlflow.set_registry_uri(custody.url)
    from_custody = mlflow.pyfunc.load_model(f"models:/{MODEL}/Production")
    mlflow.set_tracking_uri(source_server)
    mlflow.set_registry_uri(source_server)
    from_source = mlflow.pyfunc.load_model(f"models:/{MODEL}/Production")
    assert from_custody.metadata.run_id == filled["runs"][1]
    assert list(from_custody.predict(filled["X"])) == list(from_source.predict(filled["X"]))
    assert from_custody.metadata.model_uuid == from_source.metadata.model_uuid

    # Stages and aliases entered the audit trail as imports, with the source named; no
    # approval was invented; the chain still verifies.
    events = requests.get(
        f"{custody.url}/api/v1/audit/events",
        params={"model": MODEL, "limit": 1000},
        auth=auth,
        timeout=30,
    ).json()["events"]
    actions = [e["action"] for e in events]
    assert "model_version.transition" not in actions
    imported = [e for e in events if e["action"] == "model_version.import"]
    assert {e["after"]["current_stage"] for e in imported} == {"Archived", "Production", "Staging"}
    assert all(e["after"]["source"]["server"] == source_server for e in imported)
    assert all("approved_by" not in e["after"] for e in imported)
    assert {e["after"]["alias"] for e in events if e["action"] == "model_version.alias.import"} == {
        "champion",
        "challenger",
    }
    verify = requests.get(f"{custody.url}/api/v1/audit/verify", auth=auth, timeout=60)
    assert verify.status_code == 200 and verify.json()["ok"] is True, verify.text
    # Whoever ran the runs exists as a user, inactive until an administrator lets them in.
    run_user = target_runs[filled["parent"]]["user"]
    assert run_user
    state = custody.manage(
        "shell", "-c", f"from django.contrib.auth.models import User; "
        f"u = User.objects.get(username={run_user!r}); print(u.is_active, u.has_usable_password())"
    )  # fmt: skip
    assert state.strip().splitlines()[-1].split() == ["False", "False"]

    # 4. Another import changes nothing.
    before = audit_trail()
    again = _import(custody, source_server, report)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output
    data = _report(report)
    assert data["verified"] is True
    for kind, counts in data["counts"].items():
        assert counts.get("imported", 0) == 0, (kind, counts)
    assert data["counts"]["runs"]["unchanged"] == 5
    assert audit_trail() == before

    # 5. Changes at the source are imported, and only they: a new metric point and a tag on
    # one run, an alias moved, and a second version in Production (which MLflow allows and
    # Custody does not: the older one is imported as Archived, and the report says so).
    first_run = filled["runs"][0]
    source.log_metric(first_run, "loss", 0.0001, step=25)
    source.set_tag(first_run, "reviewed", "yes")
    source.set_registered_model_alias(MODEL, "champion", "3")
    source.transition_model_version_stage(MODEL, "3", "Production")
    changed = _import(custody, source_server, report)
    output = changed.communicate(timeout=600)[0]
    assert changed.returncode == 0, output
    data = _report(report)
    assert data["verified"] is True, output
    assert data["counts"]["runs"] == {"source": 5, "imported": 1, "unchanged": 4, "custody": 5}
    assert data["counts"]["registered_models"]["imported"] == 1
    assert [n["id"] for n in data["notes"]] == [f"{MODEL}/2"]
    assert _runs(target, ids)[first_run] == _runs(source, ids)[first_run]
    assert len(_runs(target, ids)[first_run]["histories"]["loss"]) == 26
    registry = _registry(target)
    assert registry["aliases"] == {"champion": "3", "challenger": "3"}
    assert {v[0]: v[1] for v in registry["versions"]} == {
        "1": "Archived",
        "2": "Archived",
        "3": "Production",
    }
    mlflow.set_tracking_uri(custody.url)
    mlflow.set_registry_uri(custody.url)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}/Production")
    assert served.metadata.run_id == filled["runs"][2]

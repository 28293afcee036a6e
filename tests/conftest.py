"""Shared fixtures.

`mlflow_server` runs Custody the way users run it: gunicorn in a subprocess, on its own
freshly migrated database of the kind DATABASE_URL names (PostgreSQL in CI, a SQLite file by
default), with a local artifact directory. The real MLflow client talks to it over HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.s3_server", "tests.browser", "tests.personas"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_admin(url: str):
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    return psycopg.connect(admin, autocommit=True)


class LiveServer:
    def __init__(self, workdir: Path, database_url: str, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.database_url = database_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifact_root = workdir / "artifacts"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": database_url,
            "CUSTODY_ARTIFACT_ROOT": str(self.artifact_root),
            "CUSTODY_DATA_DIR": str(workdir),
            "SECRET_KEY": "live-server-test-secret-" + uuid.uuid4().hex,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.env.pop("REDIS_URL", None)
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.username = "live-admin"
        self.password = "live-" + uuid.uuid4().hex
        self.log_path = workdir / "gunicorn.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        # Pages need the hashed static files, as `make run` serves them.
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "create_user",
                self.username,
                "--role",
                "admin",
                "--password-stdin",
            ],
            cwd=ROOT,
            env=self.env,
            input=self.password + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "config/gunicorn.conf.py",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                "--timeout",
                "120",
                # As scripts/run.sh: URLs over Custody's own limit get its JSON 414.
                "--limit-request-line",
                "0",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in time:\n{self.log_path.read_text()}")

    def manage(self, *args: str, stdin: str | None = None) -> str:
        """Runs a management command against the live server's database."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            text=True,
            check=True,
            capture_output=True,
        )
        return done.stdout

    def create_user(self, username: str, role: str) -> str:
        """A user with a role on the live server; answers the password."""
        password = f"{username}-" + uuid.uuid4().hex[:12]
        self.manage(
            "create_user", username, "--role", role, "--password-stdin", stdin=password + "\n"
        )
        return password

    def open_policy(self, name: str) -> None:
        """As the admin: a policy for model `name` that asks for nothing (see
        set_open_policy), for tests of the registry's own mechanics over HTTP."""
        response = requests.put(
            f"{self.url}/api/v1/models/{name}/policy",
            json=OPEN_POLICY,
            auth=(self.username, self.password),
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(autouse=True, scope="session")
def _sqlite_flush_deletes_metric_points_first():
    """On SQLite, a transactional test's flush deletes the tables in set order (Django's
    `sql_flush` takes a set), and the trigger that keeps a run while it has metric points
    (tracking migration 0011) refused the flush whenever `tracking_run` came first: a teardown
    error that depended on PYTHONHASHSEED. The metric points go first."""
    from django.db import connection

    if connection.vendor != "sqlite":
        yield
        return
    operations = type(connection.ops)
    flush = operations.sql_flush

    def metrics_first(self, style, tables, **kwargs):
        statements = flush(self, style, tables, **kwargs)
        return sorted(statements, key=lambda sql: '"tracking_metric"' not in sql)

    operations.sql_flush = metrics_first
    yield
    operations.sql_flush = flush


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test's database starts over (rolled back or flushed): so do the per-process
    caches that were filled from the previous one."""
    from core import process_cache

    process_cache.clear_all()


@contextlib.contextmanager
def fresh_database(workdir: Path, stem: str):
    """The URL of a new, empty database of the suite's kind (PostgreSQL when DATABASE_URL
    names it, else a SQLite file in `workdir`), dropped afterwards, for live servers."""
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        yield f"sqlite:///{workdir / f'{stem}.sqlite3'}"
        return
    dbname = f"{stem}_{os.getpid()}"
    with _postgres_admin(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield urlunsplit(urlsplit(base_url)._replace(path=f"/{dbname}"))
    finally:
        with _postgres_admin(base_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@contextlib.contextmanager
def running_live_server(workdir: Path, stem: str):
    """A live Custody server (gunicorn) on a fresh database named after `stem`, with an admin
    user; stopped and its database dropped afterwards."""
    with fresh_database(workdir, stem) as database_url:
        server = LiveServer(workdir, database_url)
        try:
            # Stopped even when it fails to come up, so no gunicorn outlives the test.
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def live_server_process(tmp_path_factory) -> LiveServer:
    """A live Custody server (gunicorn) on a fresh database, with an admin user."""
    with running_live_server(tmp_path_factory.mktemp("custody-live"), "custody_live") as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server(live_server_process) -> str:
    return live_server_process.url


@pytest.fixture
def mlflow_env(live_server_process, monkeypatch) -> str:
    """Points the real MLflow client at the live server, with few retries so that a
    failure shows up as a failure rather than minutes of back-off."""
    import mlflow

    mlflow_server = live_server_process.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", live_server_process.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", live_server_process.password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    # Each test starts with no active experiment, as a fresh process would.
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    yield mlflow_server
    while mlflow.active_run():
        mlflow.end_run()


OPEN_POLICY = {
    "required_tags": [],
    "metric_gates": [],
    "staging_approvals": 0,
    "production_approvals": 0,
    "rollback_approvals": 0,
    "require_model_card": False,
    "protected_aliases": [],
}


def set_open_policy(name: str) -> None:
    """Gives model `name` a policy that asks for nothing (no tags, gates, approvals or card),
    for tests of the registry's own rules. Governance tests use the real default."""
    from governance.models import ModelPolicy
    from registry.models import RegisteredModel

    ModelPolicy.objects.update_or_create(
        model=RegisteredModel.objects.get(name=name), defaults=OPEN_POLICY
    )


@pytest.fixture
def unique_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def scientist(db):
    from accounts import services

    return services.user_create(username="alice", role="data-scientist", password="alice-pw-1")


@pytest.fixture
def scientist_token(scientist) -> str:
    from accounts import services

    return services.token_create(user=scientist, name="tests")[1]


@pytest.fixture
def auth_client(scientist_token):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {scientist_token}")


@pytest.fixture
def api(auth_client):
    """A JSON client for the MLflow REST routes (Django's test client, real URL table),
    authenticated as the data scientist with a bearer token."""
    return MlflowApiClient(auth_client)


class MlflowApiClient:
    def __init__(self, client):
        self.client = client

    def post(self, path: str, body: dict | None = None, **kwargs):
        return self.client.post(
            f"/api/2.0/mlflow/{path}", body or {}, content_type="application/json", **kwargs
        )

    def get(self, path: str, params: dict | None = None, **kwargs):
        return self.client.get(f"/api/2.0/mlflow/{path}", params or {}, **kwargs)

    def patch(self, path: str, body: dict | None = None):
        return self.client.patch(
            f"/api/2.0/mlflow/{path}", body or {}, content_type="application/json"
        )

    def delete(self, path: str, body: dict | None = None):
        return self.client.delete(
            f"/api/2.0/mlflow/{path}", body or {}, content_type="application/json"
        )

    def experiment(self, name: str | None = None) -> str:
        response = self.post("experiments/create", {"name": name or f"e-{uuid.uuid4().hex}"})
        assert response.status_code == 200, response.content
        return response.json()["experiment_id"]

    def run(self, experiment_id: str, **fields) -> dict:
        body = {"experiment_id": experiment_id, "start_time": 1_700_000_000_000, **fields}
        response = self.post("runs/create", body)
        assert response.status_code == 200, response.content
        return response.json()["run"]

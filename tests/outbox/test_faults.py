"""Fault injection against a real deployment: gunicorn (tests/conftest.LiveServer) with a
Celery worker and beat on a private redis-server (its own port, stopped and restarted here),
an artifact root on a small tmpfs, and a worker killed mid-task. The recovery times measured
are printed (pytest -s) and asserted to be within a minute."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import OPEN_POLICY, ROOT, LiveServer, fresh_database

pytestmark = pytest.mark.celery

RECOVERY_LIMIT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own, without persistence: a restart loses every message, as a
    broker that failed over would."""

    def __init__(self, workdir: Path):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log),
            ]
        )
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Celery:
    """`celery -A config worker|beat` in a subprocess with the live server's environment."""

    def __init__(self, server: LiveServer, kind: str):
        self.server, self.kind = server, kind
        self.log = server.workdir / f"celery-{kind}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "celery", "-A", "config", self.kind, "-l", "INFO"]
        if self.kind == "worker":
            args += ["--pool", "solo", "--without-gossip", "--without-mingle", "-n", self.log.stem]
        else:
            args += ["-s", str(self.server.workdir / "beat-schedule")]
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.server.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"celery {self.kind} exited:\n{self.log.read_text()}")
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not in the {self.kind} log:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """gunicorn + worker + beat on a private Redis, on a fresh database."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("custody-faults")
    with fresh_database(workdir, "custody_faults") as database_url:
        broker = PrivateRedis(workdir)
        broker.start()
        server = LiveServer(workdir, database_url, {"LOG_LEVEL": "INFO"})
        server.env["REDIS_URL"] = broker.url
        server.start()
        worker, beat = Celery(server, "worker"), Celery(server, "beat")
        worker.start()
        beat.start()
        worker.wait_for("ready.")
        deployment = Deployment(server, broker, worker, beat)
        try:
            yield deployment
        finally:
            # Tests replace the worker they kill: stop the current one (and the broker last,
            # so that workers can shut down warm).
            for proc in {beat, worker, deployment.beat, deployment.worker}:
                proc.stop()
            server.stop()
            broker.stop()


class Deployment:
    def __init__(self, server: LiveServer, broker: PrivateRedis, worker: Celery, beat: Celery):
        self.server, self.broker, self.worker, self.beat = server, broker, worker, beat
        self.api = f"{server.url}/api/2.0/mlflow"
        self.v1 = f"{server.url}/api/v1"
        self.http = requests.Session()
        self.http.auth = (server.username, server.password)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        url = self.server.database_url
        if url.startswith("sqlite"):
            with sqlite3.connect(url[len("sqlite:///") :], timeout=30) as conn:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(query, params).fetchall()

    def model_with_versions(self, name: str, n: int = 2, policy: dict | None = None) -> None:
        run = self.http.post(f"{self.api}/runs/create", json={"experiment_id": "0"})
        run_id = run.json()["run"]["info"]["run_id"]
        assert self.http.post(f"{self.api}/registered-models/create", json={"name": name}).ok
        response = self.http.put(f"{self.v1}/models/{name}/policy", json=policy or OPEN_POLICY)
        assert response.status_code == 200, response.text
        for _ in range(n):
            created = self.http.post(
                f"{self.api}/model-versions/create",
                json={"name": name, "source": f"runs:/{run_id}/model"},
            )
            assert created.ok, created.text

    def transition(self, name: str, version: int, stage: str, session=None) -> requests.Response:
        return (session or self.http).post(
            f"{self.api}/model-versions/transition-stage",
            json={
                "name": name,
                "version": str(version),
                "stage": stage,
                "archive_existing_versions": False,
            },
            timeout=60,
        )

    def stage(self, name: str, version: int) -> str:
        got = self.http.get(
            f"{self.api}/model-versions/get", params={"name": name, "version": str(version)}
        )
        return got.json()["model_version"]["current_stage"]

    def wait(self, condition, what: str, limit: float = RECOVERY_LIMIT_SECONDS) -> float:
        started = time.monotonic()
        while time.monotonic() - started < limit:
            if condition():
                return time.monotonic() - started
            time.sleep(0.25)
        raise AssertionError(
            f"{what}: not within {limit} s\n--- worker ---\n{self.worker.log.read_text()[-4000:]}"
            f"\n--- beat ---\n{self.beat.log.read_text()[-3000:]}"
        )

    def pending_jobs(self) -> list[tuple]:
        return self.sql(
            "SELECT task, attempts, last_error FROM outbox_outboxjob WHERE done_at IS NULL"
        )


def test_a_redis_outage_delays_the_work_never_the_answer(deployment):
    d = deployment
    name_a, name_b = f"direct-{uuid.uuid4().hex[:6]}", f"approved-{uuid.uuid4().hex[:6]}"
    d.model_with_versions(name_a)
    d.model_with_versions(name_b, policy={**OPEN_POLICY, "production_approvals": 1})
    reviewer = requests.Session()
    reviewer.auth = ("rita", d.server.create_user("rita", "reviewer"))
    for name in (name_a, name_b):
        for version in (1, 2):
            assert d.transition(name, version, "Staging").status_code == 200
    requested = d.transition(name_b, 2, "Production")
    assert requested.status_code == 400  # waits for an approval
    listed = d.http.get(f"{d.v1}/transition-requests", params={"model": name_b, "status": "open"})
    request_id = listed.json()["requests"][0]["id"]

    d.broker.stop()
    answers = {}
    started = time.monotonic()
    promoted = d.transition(name_a, 2, "Production")
    answers["promotion"] = time.monotonic() - started
    started = time.monotonic()
    approved = reviewer.post(
        f"{d.v1}/transition-requests/{request_id}/approve", json={"comment": "ok"}, timeout=60
    )
    answers["approval"] = time.monotonic() - started
    started = time.monotonic()
    export = d.http.post(f"{d.v1}/audit/exports", json={"format": "csv"}, timeout=60)
    answers["export"] = time.monotonic() - started
    assert promoted.status_code == 200, promoted.text
    assert approved.status_code == 200 and approved.json()["applied"] is True, approved.text
    assert export.status_code == 202, export.text
    export_id = export.json()["id"]
    assert d.stage(name_a, 2) == d.stage(name_b, 2) == "Production"
    assert d.stage(name_a, 1) == d.stage(name_b, 1) == "Staging"  # archiving waits for Redis
    pending = d.pending_jobs()
    assert sorted(task for task, _, _ in pending) == [
        "governance.run_audit_export",
        "registry.archive_superseded_versions",
        "registry.archive_superseded_versions",
    ]
    assert all(attempts == 0 and error.startswith("broker:") for _, attempts, error in pending)
    ready = requests.get(f"{d.server.url}/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("failing")
    time.sleep(10)  # an outage of some length: beat and the worker keep failing meanwhile

    d.broker.start()
    back = time.monotonic()
    recovered = {}
    for what, condition in (
        ("archive after the promotion", lambda: d.stage(name_a, 1) == "Archived"),
        ("archive after the approval", lambda: d.stage(name_b, 1) == "Archived"),
        (
            "audit export",
            lambda: d.http.get(f"{d.v1}/audit/exports/{export_id}").json()["status"] == "done",
        ),
    ):
        d.wait(condition, what, limit=RECOVERY_LIMIT_SECONDS - (time.monotonic() - back))
        recovered[what] = round(time.monotonic() - back, 1)
    assert not d.pending_jobs()
    assert requests.get(f"{d.server.url}/ready", timeout=30).status_code == 200
    print(f"\nanswers during the outage (s): { {k: round(v, 2) for k, v in answers.items()} }")
    print(f"done this long after Redis returned (s): {recovered}")
    assert all(v < 10 for v in answers.values()), answers


def test_a_worker_killed_mid_task_converges(deployment):
    """SIGKILL while the archiving task waits on a lock: the message stays unacknowledged in
    Redis (redelivered only after the visibility timeout); the outbox lease and the
    reconciler bring the work back well within a minute of the new worker starting."""
    d = deployment
    name = f"killed-{uuid.uuid4().hex[:6]}"
    d.model_with_versions(name)
    for version in (1, 2):
        assert d.transition(name, version, "Staging").status_code == 200
    kill_worker_mid_archive(d, name, lambda: d.transition(name, 2, "Production"))
    assert d.stage(name, 1) == "Staging"
    d.worker = Celery(d.server, "worker")
    restarted = time.monotonic()
    d.worker.start()
    converged = d.wait(lambda: d.stage(name, 1) == "Archived", "archiving after the kill")
    print(
        f"\nworker killed mid-task: archived {converged:.1f} s after the new worker was "
        f"started ({time.monotonic() - restarted:.1f} s)"
    )


def kill_worker_mid_archive(d, name: str, promote) -> requests.Response:
    """`promote()` (version 2 of `name` to Production) while d.worker is stopped, then the
    archiving task finds its lock taken, and the worker is SIGKILLed in the middle of it.
    `d` has `.worker` and `.server`; answers the promotion's response."""
    os.kill(d.worker.proc.pid, signal.SIGSTOP)  # the task must find the lock taken
    try:
        promoted = promote()
        assert promoted.status_code == 200, promoted.text
    finally:
        lock = hold_write_lock(d, name)
        os.kill(d.worker.proc.pid, signal.SIGCONT)
    try:
        d.worker.wait_for("registry.archive_superseded_versions", timeout=30)
        time.sleep(1.0)
        d.worker.kill()
    finally:
        lock.release()
    return promoted


class _Lock:
    def __init__(self, conn, closer):
        self.conn, self.closer = conn, closer

    def release(self) -> None:
        self.closer()


def hold_write_lock(d: Deployment, name: str) -> _Lock:
    """Something the archiving task must wait for: SQLite's write lock, or on PostgreSQL the
    row of the version to archive."""
    url = d.server.database_url
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")

        def release():
            conn.execute("ROLLBACK")
            conn.close()

        return _Lock(conn, release)
    import psycopg

    conn = psycopg.connect(url.replace("postgres://", "postgresql://"))
    conn.execute(
        "SELECT mv.id FROM registry_modelversion mv JOIN registry_registeredmodel rm "
        "ON rm.id = mv.registered_model_id WHERE rm.name = %s AND mv.version = 1 FOR UPDATE",
        (name,),
    )

    def release():
        conn.rollback()
        conn.close()

    return _Lock(conn, release)


def test_a_full_artifact_store_answers_a_readable_error_the_client_does_not_retry(
    tmp_path_factory,
):
    """A tmpfs of 4 MiB as the artifact root and a 6 MiB upload: 507 with a JSON error that
    says what is full, nothing stored, and /ready reports the store."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    workdir = tmp_path_factory.mktemp("custody-full")
    root = workdir / "artifacts"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    server = LiveServer(workdir, f"sqlite:///{workdir / 'full.sqlite3'}")
    try:
        server.start()
        http = requests.Session()
        http.auth = (server.username, server.password)
        api = f"{server.url}/api/2.0/mlflow"
        run = http.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
        target = run["artifact_uri"].replace("mlflow-artifacts:/", "")
        url = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{target}/big.bin"
        assert http.put(url, data=b"x" * 1024).status_code == 200  # room for a small one
        started = time.monotonic()
        response = http.put(url.replace("big.bin", "huge.bin"), data=os.urandom(6 * 1024**2))
        elapsed = time.monotonic() - started
        assert response.status_code == 507, response.text
        body = response.json()
        assert body["error_code"] == "QUOTA_EXCEEDED"
        assert "artifact store is full" in body["message"] and "nothing" in body["message"]
        from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES

        assert response.status_code not in _TRANSIENT_FAILURE_RESPONSE_CODES
        stored = [p.name for p in root.rglob("*") if p.is_file()]
        assert stored == ["big.bin"], stored  # no partial file, no temporary file
        assert requests.get(f"{server.url}/ready", timeout=30).status_code == 200

        # Filled by something else: /ready says which check fails.
        filler = root / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        ready = requests.get(f"{server.url}/ready", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["artifact_store"] == "failing: full"
        assert ready.json()["checks"]["database"] == "ok"
        filler.unlink()
        assert requests.get(f"{server.url}/ready", timeout=30).status_code == 200

        # The real MLflow client, with its retries on: one attempt, a readable failure.
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_TRACKING_USERNAME": server.username,
            "MLFLOW_TRACKING_PASSWORD": server.password,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
        }
        big = workdir / "model.bin"
        big.write_bytes(os.urandom(6 * 1024**2))
        script = (
            "import mlflow, sys\n"
            f"with mlflow.start_run(run_id={run['run_id']!r}):\n"
            f"    mlflow.log_artifact({str(big)!r})\n"
        )
        client_started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        client_elapsed = time.monotonic() - client_started
        assert done.returncode != 0
        assert "507" in done.stderr and "artifact store is full" in done.stderr, done.stderr[-2000:]
        # With retries that would be 5 attempts and 2+4+8+16 s of back-off.
        assert client_elapsed < 25, client_elapsed
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["big.bin"]
        print(
            f"\nfull store: 507 in {elapsed:.2f} s; MLflow client gave up after one attempt "
            f"in {client_elapsed:.1f} s"
        )
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(root)], check=False)

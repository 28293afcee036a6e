"""Databases and servers under test: fresh PostgreSQL databases, Custody under gunicorn, and
`mlflow server` from its own virtualenv (bench/.mlflow-venv)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MLFLOW_VENV = BENCH_DIR / ".mlflow-venv"
MLFLOW_SPEC = ["mlflow==3.17.2", "psycopg2-binary"]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

# Worker sizing on a 2-core machine (see README "Server configuration"):
#  * 4 processes: two per core, so one can run Python while the other waits on PostgreSQL or
#    the socket; more processes only add context switches and memory on 2 cores.
#  * Custody: gthread with 4 threads each (16 concurrent requests, >= the 8 client threads of
#    the busiest scenario) so requests blocked on PostgreSQL don't queue behind each other.
#  * MLflow: `mlflow server --workers 4` (its default; uvicorn, each worker runs the Flask
#    app in a thread pool).
WORKERS = 4
THREADS = 4


def pg_admin() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def recreate_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postmaster_pid() -> int | None:
    try:
        with pg_admin() as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        return int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    except Exception:
        return None


def pg_version() -> str:
    with pg_admin() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


class DbStats:
    """pg_stat_database counters for one database, read over one long-lived connection."""

    COLS = (
        "xact_commit",
        "xact_rollback",
        "tup_returned",
        "tup_fetched",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "blks_read",
        "blks_hit",
    )

    def __init__(self):
        self.conn = pg_admin()

    def __call__(self, dbname: str) -> dict[str, int]:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            f"SELECT {', '.join(self.COLS)} FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
        return dict(zip(self.COLS, row, strict=True)) if row else {}

    def db_size(self, dbname: str) -> int:
        return self.conn.execute("SELECT pg_database_size(%s)", (dbname,)).fetchone()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    dbname: str
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    version: str = ""
    command: list[str] = field(default_factory=list)
    tmpdir: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}\n"
                    + tail(self.log_path)
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception as exc:
                last = str(exc)
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.name} not healthy after {timeout}s ({last}); log: {self.log_path}"
        )

    def stop(self) -> None:
        if not self.alive():
            return
        # Both servers are started in their own session; signal the whole group so uvicorn's
        # or gunicorn's workers go too.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def tail(path: Path | None, n: int = 30) -> str:
    if not path or not path.exists():
        return ""
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def start_custody(
    workdir: Path,
    python: str,
    log,
    user: str,
    password: str,
    role: str,
    *,
    dbname: str = "custody_bench",
    production_config: bool = False,
) -> Server:
    """production_config: start gunicorn with config/gunicorn.conf.py as deployments do
    (multi-process metrics, JSON request log) besides the worker sizing below."""
    recreate_database(dbname)
    art = workdir / "custody-artifacts"
    data = workdir / "custody-data"
    art.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}",
        CUSTODY_ARTIFACT_ROOT=str(art),
        CUSTODY_DATA_DIR=str(data),
        SECRET_KEY="bench-not-secret-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE=env.get("BENCH_DJANGO_SETTINGS", "config.settings.base"),
        DEBUG="false",
        LOG_LEVEL="WARNING",
        # The registry scenario measures the registry, not the review: promotions need the
        # lineage tags (the setup sets them) but no approval or model card.
        CUSTODY_POLICY_PRODUCTION_APPROVALS="0",
        CUSTODY_POLICY_REQUIRE_MODEL_CARD="0",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    log_path = workdir / "custody.log"
    log(f"custody: migrate into {dbname}")
    t0 = time.monotonic()
    mig = subprocess.run(
        [python, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if mig.returncode != 0:
        raise RuntimeError(f"custody migrate failed:\n{mig.stdout[-2000:]}\n{mig.stderr[-3000:]}")
    log(f"custody: migrated in {time.monotonic() - t0:.1f}s")
    # The MLflow API needs credentials: a user of the given role, used over HTTP Basic like
    # MLFLOW_TRACKING_USERNAME/PASSWORD (the server caches the verified password per process).
    cu = subprocess.run(
        [python, "manage.py", "create_user", user, "--role", role, "--password-stdin"],
        cwd=REPO,
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    if cu.returncode != 0:
        raise RuntimeError(f"custody create_user failed:\n{cu.stdout[-1000:]}\n{cu.stderr[-2000:]}")
    log(f"custody: user {user!r} ({role}) created")
    gunicorn = str(Path(python).parent / "gunicorn")
    config = ["-c", "config/gunicorn.conf.py"] if production_config else []
    cmd = [
        gunicorn,
        *config,
        "config.wsgi:application",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "-k",
        "gthread",
        "--timeout",
        "300",
        "--keep-alive",
        "5",
        "--worker-tmp-dir",
        "/dev/shm",
        "--log-level",
        "warning",
    ]
    f = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
    )
    srv = Server("custody", port, dbname, proc, log_path, command=cmd, tmpdir=workdir)
    srv.version = custody_version(python)
    srv.wait_healthy()
    return srv


def custody_version(python: str) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except Exception:
        commit = "?"
    return f"custody @ {commit} (working tree, may include uncommitted changes)"


def ensure_mlflow_venv(log) -> str:
    py = MLFLOW_VENV / "bin" / "python"
    mlflow_bin = MLFLOW_VENV / "bin" / "mlflow"
    if not mlflow_bin.exists():
        uv = shutil.which("uv")
        if not uv:
            raise RuntimeError("uv is needed to create bench/.mlflow-venv")
        log(f"creating {MLFLOW_VENV} with {' '.join(MLFLOW_SPEC)}")
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(MLFLOW_VENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "-p", str(py), *MLFLOW_SPEC], check=True)
    out = subprocess.run(
        [str(py), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def start_mlflow(
    workdir: Path,
    log,
    *,
    dbname: str = "mlflow_bench",
    backend_store_uri: str | None = None,
    workers: int = WORKERS,
    health_timeout: float = 300,
) -> Server:
    """`backend_store_uri` (e.g. a SQLite file) instead of the PostgreSQL database `dbname`,
    which is dropped and created afresh."""
    version = ensure_mlflow_venv(log)
    if backend_store_uri is None:
        recreate_database(dbname)
        backend_store_uri = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    art = workdir / "mlflow-artifacts"
    art.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(MLFLOW_VENV / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(art),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    log_path = workdir / "mlflow.log"
    f = open(log_path, "wb")
    log(f"mlflow {version}: starting (creates its schema on first start)")
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
    )
    srv = Server("mlflow", port, dbname, proc, log_path, command=cmd, tmpdir=workdir)
    srv.version = f"mlflow {version}"
    srv.wait_healthy(timeout=health_timeout)
    return srv


def python_of_project() -> str:
    venv_py = REPO / ".venv" / "bin" / "python"
    return str(venv_py if venv_py.exists() else Path(sys.executable))

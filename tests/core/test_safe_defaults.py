"""Safe defaults of the embedded install: `make run` listens on 127.0.0.1 unless HOST says
otherwise and prints URLs for the address it bound, and the data directory, the SQLite
database and the artifact directory are private to the account (0700/0600) even when the
commands run under a permissive umask."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "SECRET_KEY", "REDIS_URL", "CUSTODY_ARTIFACT_ROOT", "HOST"}
        and not key.startswith(("DJANGO_", "PYTEST_"))
    }
    env.update(CUSTODY_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", **extra)
    return env


def permissive_umask():
    os.umask(0o022)


def test_migrate_by_hand_creates_a_private_data_directory(tmp_path):
    data = tmp_path / "fresh" / "data"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=embedded_env(data, DJANGO_SETTINGS_MODULE="config.settings.base"),
        preexec_fn=permissive_umask,
        check=True,
    )
    assert mode(data) == 0o700
    assert mode(data / "artifacts") == 0o700
    assert mode(data / "custody.sqlite3") == 0o600
    assert mode(data / "secret_key") == 0o600
    assert (data / "custody.sqlite3").stat().st_size > 0  # migrated, not just created


def test_an_existing_open_database_file_is_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    database = data / "custody.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=embedded_env(data, DJANGO_SETTINGS_MODULE="config.settings.base"),
        preexec_fn=permissive_umask,
        check=True,
    )
    assert mode(database) == 0o600
    # An existing CUSTODY_DATA_DIR is the operator's; its mode is left as they set it.
    assert mode(data) == 0o755


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sandbox(tmp_path: Path) -> Path:
    """The repository with scripts/bootstrap.sh stubbed out (the test environment is already
    installed; the real one would install the run lock file)."""
    sandbox = tmp_path / "custody"
    sandbox.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"scripts", "data", ".git"}:
            (sandbox / entry.name).symlink_to(entry)
    scripts = sandbox / "scripts"
    scripts.mkdir()
    (scripts / "run.sh").write_bytes((ROOT / "scripts" / "run.sh").read_bytes())
    (scripts / "bootstrap.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    for script in scripts.iterdir():
        script.chmod(0o755)
    return sandbox


def _run_until_listening(sandbox: Path, data: Path, host: str | None):
    port = _free_port()
    extra = {
        "PORT": str(port),
        "CUSTODY_ADMIN_PASSWORD": "run-sh-admin-pw-1",
        "WEB_CONCURRENCY": "1",
    }
    if host is not None:
        extra["HOST"] = host
    log = data.parent / f"run-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(sandbox / "scripts" / "run.sh")],
            env=embedded_env(data, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=permissive_umask,
        )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"run.sh exited early:\n{log.read_text()}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail(f"run.sh did not answer in time:\n{log.read_text()}")
        sqlite = data / "custody.sqlite3"
        files = {p.name: mode(p) for p in data.iterdir() if p.name.startswith(sqlite.name)}
        return port, log.read_text(), files
    finally:
        proc.send_signal(signal.SIGTERM)  # run.sh execs gunicorn: this is the master
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_run_sh_binds_loopback_by_default_and_all_interfaces_only_when_asked(tmp_path):
    sandbox = _sandbox(tmp_path)
    data = tmp_path / "data"

    port, output, sqlite_files = _run_until_listening(sandbox, data, host=None)
    assert f"Listening at: http://127.0.0.1:{port}" in output
    assert (
        f"listening on 127.0.0.1 only (HOST=0.0.0.0 to serve other machines): http://127.0.0.1:{port}"
        in output
    )
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}" in output
    assert "0.0.0.0" not in output.replace("HOST=0.0.0.0", "")
    # The running server's database, with its WAL companions, and everything it created.
    assert sqlite_files and set(sqlite_files.values()) == {0o600}, sqlite_files
    assert mode(data) == 0o700
    assert mode(data / "artifacts") == 0o700
    assert mode(data / "static") == 0o700

    port, output, _ = _run_until_listening(sandbox, data, host="0.0.0.0")
    assert f"Listening at: http://0.0.0.0:{port}" in output
    assert (
        f"listening on all interfaces (0.0.0.0); from this machine: http://127.0.0.1:{port}"
        in output
    )
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}" in output

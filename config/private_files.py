"""The embedded default keeps password hashes, live sessions, the secret key and artifacts
under the data directory: create it and the SQLite database private to the account that
runs Custody, whatever the umask of whoever runs `manage.py` (docs/security.md).

Called while settings load, so never fatal: a path that cannot be created here (a read-only
image, a mount not there yet) is left to the component that uses it to report."""

from __future__ import annotations

import os
import stat
from pathlib import Path

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def ensure_private_dir(path: Path, *, tighten: bool = False) -> None:
    """Creates `path` (mode 0700) if missing; `tighten` also removes group and other access
    from an existing directory."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if tighten:
            _drop_group_and_other(path)
    except OSError:
        pass


def ensure_private_sqlite(path: Path) -> None:
    """Creates the database file 0600 before SQLite does (SQLite would follow the umask, and
    gives its -wal and -shm files the database file's mode), and makes an existing one
    private: it holds password hashes and session keys."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        for suffix in SQLITE_COMPANIONS:
            companion = Path(f"{path}{suffix}")
            if companion.exists():
                _drop_group_and_other(companion)
    except OSError:
        pass


def _drop_group_and_other(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & 0o700)


def sqlite_file(database: dict) -> Path | None:
    """The file behind a SQLite DATABASES entry, or None (another engine, in memory)."""
    if database.get("ENGINE") != "django.db.backends.sqlite3":
        return None
    name = str(database.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)

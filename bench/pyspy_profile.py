"""Optional CPU profile of a server under load (`--profile`), with py-spy sampling the whole
process tree from outside (no code changes in either server). py-spy is installed into the
bench's own venv (bench/.mlflow-venv), never the project's.

The profile is taken in a separate, shorter pass after the measured one, so the sampler's own
CPU use does not touch the numbers in the table. Only samples of threads holding the GIL are
kept (`--gil`), so the shares answer "what does the server's Python CPU time go to"; time spent
waiting on PostgreSQL or the socket is not in them (see the CPU table for that)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from servers import MLFLOW_VENV

PY_SPY = MLFLOW_VENV / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

SPLIT = ("django", "sqlalchemy", "mlflow")
PROJECT_APPS = ("core", "tracking", "registry", "accounts", "audit", "governance", "config")


def ensure_py_spy(log) -> bool:
    if PY_SPY.exists():
        return True
    try:
        subprocess.run(
            ["uv", "pip", "install", "-q", "-p", str(MLFLOW_VENV / "bin" / "python"), "py-spy"],
            check=True,
            timeout=300,
        )
    except Exception as exc:
        log(f"py-spy unavailable ({exc}); --profile ignored")
        return False
    return PY_SPY.exists()


def start(pid: int, duration: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--rate",
            "200",
            "--duration",
            str(max(1, int(duration))),
            "--format",
            "raw",
            "--full-filenames",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def package_of(path: str) -> str:
    p = path.replace("\\", "/")
    if "site-packages/" in p:
        rest = p.split("site-packages/", 1)[1]
        parts = rest.split("/")
        top = parts[0].removesuffix(".py")
        if top in SPLIT and len(parts) > 2:
            return f"{top}.{parts[1]}"  # e.g. django.db, sqlalchemy.orm, mlflow.store
        return top
    if "/work/main/" in p:
        top = p.split("/work/main/", 1)[1].split("/", 1)[0]
        return f"custody:{top}" if top in PROJECT_APPS else top
    if "/lib/python3" in p:
        mod = p.split("/lib/python3", 1)[1].split("/", 2)
        return "stdlib:" + (mod[1].removesuffix(".py") if len(mod) > 1 else "?")
    return p.rsplit("/", 1)[-1] or "?"


def summarize(raw: Path, top: int = 15) -> dict:
    self_pkg: Counter = Counter()
    self_fn: Counter = Counter()
    incl_fn: Counter = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # py-spy's raw format starts with a "process <pid>:..." / thread frame; skip those.
        frames = [f for f in frames if _FRAME.match(f)]
        if not frames:
            continue
        total += n
        leaf = _FRAME.match(frames[-1])
        self_pkg[package_of(leaf["file"])] += n
        self_fn[f"{leaf['func']} ({_short(leaf['file'])})"] += n
        seen = set()
        for f in frames:
            m = _FRAME.match(f)
            key = f"{m['func']} ({_short(m['file'])})"
            if key not in seen:
                seen.add(key)
                incl_fn[key] += n

    def pct(c: Counter, k: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * v / total) for name, v in c.most_common(k)] if total else []

    return {
        "samples": total,
        "self_by_package": pct(self_pkg, top),
        "self_by_function": pct(self_fn, top),
        "inclusive_by_function": pct(incl_fn, 40),
    }


def _short(path: str) -> str:
    p = path.replace("\\", "/")
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in p:
            return p.split(marker, 1)[1]
    return p


def render(summary: dict) -> str:
    lines = [
        f"samples: {summary.get('samples', 0)} (threads holding the GIL, all server processes)"
    ]
    for title, key in (
        ("self time by package", "self_by_package"),
        ("self time by function", "self_by_function"),
        ("inclusive time by function", "inclusive_by_function"),
    ):
        lines.append(f"\n{title}:")
        for name, share in summary.get(key, []):
            lines.append(f"  {share:5.1f}%  {name}")
    return "\n".join(lines) + "\n"

#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs a lock file into it (idempotent, fast when done).
# Usage: scripts/bootstrap.sh requirements-run.lock|requirements-test.lock
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK="${1:-requirements-run.lock}"

find_python() {
  for candidate in python3.11 /root/.pyenv/versions/3.11.*/bin/python3.11 /usr/bin/python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 || [ -x "$candidate" ]; then
      if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
        command -v "$candidate" 2>/dev/null || echo "$candidate"
        return 0
      fi
    fi
  done
  echo "Custody needs Python 3.11 (python3.11 was not found)." >&2
  return 1
}

PYTHON="$(find_python)"
if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet --user uv >/dev/null 2>&1 || "$PYTHON" -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
UV="$(command -v uv || echo "$PYTHON -m uv")"
if [ ! -x .venv/bin/python ]; then
  $UV venv --quiet --python "$PYTHON" .venv
fi
STAMP=".venv/.installed-$(basename "$LOCK")"
if [ ! -f "$STAMP" ] || [ "$LOCK" -nt "$STAMP" ]; then
  $UV pip install --quiet --python .venv/bin/python --require-hashes -r "$LOCK"
  touch "$STAMP"
fi

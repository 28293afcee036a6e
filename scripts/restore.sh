#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh into an EMPTY database and artifact directory,
# applies the migrations of this code, and verifies the audit chain (exit 1 if it is broken).
#   DATABASE_URL=postgres://.../custody_restored CUSTODY_ARTIFACT_ROOT=/srv/restored scripts/restore.sh SRC
set -euo pipefail
SRC="${1:?usage: scripts/restore.sh SRC}"
: "${DATABASE_URL:?set DATABASE_URL (an empty PostgreSQL database)}"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
pg_restore --no-owner --exit-on-error --dbname "${DATABASE_URL/#postgres:/postgresql:}" "$SRC/custody.dump"
ROOT="${CUSTODY_ARTIFACT_ROOT:-${CUSTODY_DATA_DIR:-data}/artifacts}"
case "$ROOT" in
  s3://*) echo "artifact store $ROOT: copy the bucket back with your S3 tooling" ;;
  *) mkdir -p "$ROOT" && tar -C "$ROOT" -xzf "$SRC/artifacts.tar.gz" ;;
esac
"$PYTHON" manage.py migrate --noinput -v 0
# The restored chain must verify, with its signed checkpoints, to the head recorded at backup.
"$PYTHON" manage.py verify_audit
"$PYTHON" manage.py verify_audit --json > "$SRC/audit-after-restore.json"
echo "restored from $SRC"

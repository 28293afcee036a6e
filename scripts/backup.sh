#!/usr/bin/env bash
# Backs up Custody: the database first, then the artifact store, into DEST (a new directory).
#   DATABASE_URL=postgres://... CUSTODY_ARTIFACT_ROOT=/srv/custody/artifacts scripts/backup.sh DEST
# Database first: every artifact the dump refers to was written before it and is in the copy
# (an artifact written meanwhile is extra, never missing). With an S3 artifact root, copy the
# bucket with your S3 tooling after the dump (docs/operations.md, "Backup and restore").
set -euo pipefail
DEST="${1:?usage: scripts/backup.sh DEST}"
: "${DATABASE_URL:?set DATABASE_URL (PostgreSQL)}"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
umask 077
mkdir -p "$DEST"
# The chain head at backup time, to compare with the restored one.
"$PYTHON" manage.py verify_audit --json > "$DEST/audit-before.json"
pg_dump --format=custom --no-owner --file "$DEST/custody.dump" "${DATABASE_URL/#postgres:/postgresql:}"
ROOT="${CUSTODY_ARTIFACT_ROOT:-${CUSTODY_DATA_DIR:-data}/artifacts}"
case "$ROOT" in
  s3://*) echo "artifact store $ROOT: copy it with your S3 tooling now (after the dump)" ;;
  *) tar -C "$ROOT" -czf "$DEST/artifacts.tar.gz" . ;;
esac
echo "backed up to $DEST"

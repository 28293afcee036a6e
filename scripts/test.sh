#!/usr/bin/env bash
# Installs what the tests need and runs them: `scripts/test.sh [pytest arguments]`.
# Tests run on SQLite unless DATABASE_URL names PostgreSQL; S3 tests start SeaweedFS
# themselves unless CUSTODY_TEST_S3_ENDPOINT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-test.lock

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing Debian packages (install them as root): ${missing[*]}" >&2
  fi
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile /tmp/custody-redis.log >/dev/null
fi
case "${DATABASE_URL:-}" in
  postgres*)
    if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi ;;
esac
exec .venv/bin/python -m pytest "$@"

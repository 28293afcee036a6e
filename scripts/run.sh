#!/usr/bin/env bash
# Installs and starts Custody on the embedded default: SQLite, a local artifact directory,
# Celery tasks and the periodic schedule in-process, under gunicorn.
#
# Listens on 127.0.0.1 unless HOST says otherwise (HOST=0.0.0.0 make run for every interface).
set -euo pipefail
# The data directory holds password hashes, sessions, the secret key and artifacts: whatever
# this script and gunicorn create is private to this account.
umask 077
cd "$(dirname "$0")/.."
if [ -f .env ]; then set -a; . ./.env; set +a; fi
scripts/bootstrap.sh requirements-run.lock
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.base}"
PORT="${PORT:-5000}"
HOST="${HOST:-127.0.0.1}"
case "$HOST" in
  *:*) BIND_HOST="[${HOST#[}"; BIND_HOST="${BIND_HOST%]}]" ;;  # IPv6, bracketed once
  *) BIND_HOST="$HOST" ;;
esac
case "$BIND_HOST" in
  0.0.0.0 | "[::]")
    URL_HOST=127.0.0.1
    LISTENING="listening on all interfaces (${BIND_HOST}); from this machine:"
    HINT="  Other machines: set ALLOWED_HOSTS to the name they use for this one." ;;
  127.0.0.1 | localhost | "[::1]")
    URL_HOST="$BIND_HOST"
    LISTENING="listening on ${BIND_HOST} only (HOST=0.0.0.0 to serve other machines):"
    HINT="" ;;
  *)
    URL_HOST="$BIND_HOST"
    LISTENING="listening on ${BIND_HOST} only:"
    HINT=""
    # Clients will send this address as the Host header: serve it.
    export ALLOWED_HOSTS="${ALLOWED_HOSTS:-localhost,127.0.0.1,[::1],${BIND_HOST}}" ;;
esac
BASE_URL="http://${URL_HOST}:${PORT}"
mkdir -p -m 700 "${CUSTODY_DATA_DIR:-data}"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py ensure_admin --url "$BASE_URL"
cat <<MSG

Custody is starting, ${LISTENING} ${BASE_URL}
  MLflow client:  export MLFLOW_TRACKING_URI=${BASE_URL}
                  (and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)
  Web UI:         ${BASE_URL}/
  Admin:          ${BASE_URL}/admin/
  API docs:       ${BASE_URL}/api/v1/docs
${HINT}
MSG
# Workers, threads and timeouts from the core count and the database:
# config/gunicorn.conf.py (WEB_CONCURRENCY and GUNICORN_THREADS override them).
exec .venv/bin/gunicorn -c config/gunicorn.conf.py config.wsgi:application \
  --bind "${BIND_HOST}:${PORT}"

#!/usr/bin/env bash
# Installs and starts Custody on the embedded default: SQLite, a local artifact directory,
# Celery tasks in-process, under gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then set -a; . ./.env; set +a; fi
scripts/bootstrap.sh requirements-run.lock
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.base}"
PORT="${PORT:-5000}"
mkdir -p "${CUSTODY_DATA_DIR:-data}"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py ensure_admin --url "http://127.0.0.1:${PORT}"
case "${DATABASE_URL:-sqlite}" in
  postgres*) DEFAULT_WORKERS=$(( $(nproc) * 2 + 1 )) ;;
  *) DEFAULT_WORKERS=2 ;;  # SQLite has one writer; more processes only queue for its lock
esac
WORKERS="${WEB_CONCURRENCY:-$DEFAULT_WORKERS}"
[ "$WORKERS" -gt 8 ] && WORKERS=8
cat <<MSG

Custody is starting on http://127.0.0.1:${PORT}
  MLflow client:  export MLFLOW_TRACKING_URI=http://127.0.0.1:${PORT}
                  (and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)
  Web UI:         http://127.0.0.1:${PORT}/
  Admin:          http://127.0.0.1:${PORT}/admin/
  API docs:       http://127.0.0.1:${PORT}/api/v1/docs

MSG
exec .venv/bin/gunicorn config.wsgi:application --bind "0.0.0.0:${PORT}" \
  --workers "$WORKERS" --threads "${GUNICORN_THREADS:-4}" --worker-class gthread \
  --timeout 120 --limit-request-line 0 --access-logfile -

# syntax=docker/dockerfile:1
# Custody's container image: one image for the web processes, the Celery worker, beat and the
# migration job (the command differs). Built from the lock file alone (hashes checked).
#
#   docker build -t custody:0.1.0 .
#   docker run --rm -p 5000:5000 -e SECRET_KEY=... -e DATABASE_URL=... custody:0.1.0
#
# See deploy/compose.yaml for the whole stack and docs/operations.md, "Deployment".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the virtualenv from the lock file, and the static files ---------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/custody
COPY requirements-run.lock /tmp/requirements-run.lock
# --require-hashes: exactly the reviewed artifacts of the lock file, nothing resolved here.
RUN /opt/custody/bin/pip install --no-deps --require-hashes -r /tmp/requirements-run.lock
WORKDIR /app
COPY . /app
# collectstatic needs settings, not a database or the real secret key.
RUN SECRET_KEY=collectstatic-only CUSTODY_DATA_DIR=/tmp/build-data \
    CUSTODY_STATIC_ROOT=/app/static DJANGO_SETTINGS_MODULE=config.settings.base \
    /opt/custody/bin/python manage.py collectstatic --noinput -v 0 \
 && rm -rf /tmp/build-data \
 && /opt/custody/bin/python -m compileall -q /app

# ---- runtime: no compilers, no pip cache, a user without a shell or a home to write -----------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 custody \
 && useradd --system --uid 10001 --gid custody --no-create-home --shell /usr/sbin/nologin custody \
 && mkdir -p /data && chown custody:custody /data && chmod 700 /data
COPY --from=build /opt/custody /opt/custody
COPY --from=build --chown=root:root /app /app
WORKDIR /app
ENV PATH=/opt/custody/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.base \
    CUSTODY_DATA_DIR=/data \
    CUSTODY_STATIC_ROOT=/app/static \
    HOST=0.0.0.0 \
    PORT=5000
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import os,urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]
# Workers from the core count (2 x cores + 1 on PostgreSQL, at most 8; WEB_CONCURRENCY
# overrides), gthread with 4 threads: config/gunicorn.conf.py.
# Worker: celery -A config worker -l INFO    Beat: celery -A config beat -l INFO
# Migrations: python manage.py migrate --noinput
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]

"""gunicorn settings for every deployment (`make run`, the container image, the chart):
`gunicorn -c config/gunicorn.conf.py config.wsgi:application`. Command-line options win.

Workers: WEB_CONCURRENCY, else 2 x cores + 1 on PostgreSQL (at most 8) and 2 on SQLite (one
writer: more processes only queue for its lock). Each runs GUNICORN_THREADS threads (4).

Metrics: every worker writes its counters under PROMETHEUS_MULTIPROC_DIR (made here, emptied
at start, a worker's files merged away when it exits), so that /metrics answers for all of
them whichever worker is asked. Do not preload: the outbox relay and periodic-task threads
(config/wsgi.py) must start in the workers."""

import os
import shutil
import tempfile
from pathlib import Path


def _default_workers() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return 2
    return min(2 * (os.cpu_count() or 1) + 1, 8)


bind = os.environ.get(
    "GUNICORN_BIND", f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
)
workers = int(os.environ.get("WEB_CONCURRENCY") or _default_workers())
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# URLs over Custody's own limit get its JSON 414 (core.middleware.MAX_URI_BYTES).
limit_request_line = 0
# Custody writes its own JSON line per request (core.observability); no second access log.
accesslog = None

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
    Path(tempfile.gettempdir()) / f"custody-metrics-{os.getpid()}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server) -> None:
    # Counters of an earlier run would be added to this one's.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)


def on_exit(server) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

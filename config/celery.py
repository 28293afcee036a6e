import os
import tempfile

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

# A worker serves its own metrics (task outcomes) on CUSTODY_WORKER_METRICS_PORT, a separate
# bind address for the scraper (CUSTODY_WORKER_METRICS_HOST, default 0.0.0.0). Its pool
# processes write to one directory that the main process adds up (prometheus_client's
# multiprocess mode), which must be chosen before prometheus_client is first imported.
WORKER_METRICS_PORT = int(os.environ.get("CUSTODY_WORKER_METRICS_PORT") or 0)
if WORKER_METRICS_PORT and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="custody-worker-metrics-")

app = Celery("custody")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _serve_worker_metrics(**_) -> None:
    if not WORKER_METRICS_PORT:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    host = os.environ.get("CUSTODY_WORKER_METRICS_HOST", "0.0.0.0")
    start_http_server(WORKER_METRICS_PORT, addr=host, registry=registry)


@signals.worker_process_shutdown.connect
def _forget_pool_process(pid=None, **_) -> None:
    if WORKER_METRICS_PORT:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@signals.setup_logging.connect
def _log_as_the_web_processes_do(**_) -> None:
    """Workers and beat log with settings.LOGGING (one JSON object a line, with the request id
    of the request that caused the task) instead of Celery's own format; the level is
    LOG_LEVEL, not the `-l` option."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)

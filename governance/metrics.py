"""The domain's figures for /metrics (core.observability), read from the database when the
scraper asks: a handful of aggregate queries per scrape, nothing per request. Governance sits
above the registry, the audit trail and the outbox, so it reads all of them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# Age classes of open transition requests: (label, lower bound).
AGE_CLASSES = (("under_1h", 0), ("1h_to_1d", 3600), ("1d_to_7d", 86400), ("over_7d", 7 * 86400))


def collect() -> Iterable[Metric]:
    yield from _reviews()
    yield from _registry()
    yield from _audit()
    yield from _outbox()
    yield from _queue()


def _reviews() -> Iterable[Metric]:
    from governance.models import Review, TransitionRequest

    now = timezone.now()
    bounds = [*(b for _, b in AGE_CLASSES[1:]), None]
    aggregates = {}
    for (label, low), high in zip(AGE_CLASSES, bounds, strict=True):
        in_class = Q(created_at__lte=now - timedelta(seconds=low))
        if high is not None:
            in_class &= Q(created_at__gt=now - timedelta(seconds=high))
        aggregates[label] = Count("id", filter=in_class)
    open_requests = GaugeMetricFamily(
        "custody_transition_requests_open",
        "Open transition requests by target stage and age",
        labels=["to_stage", "age"],
    )
    oldest = GaugeMetricFamily(
        "custody_transition_request_oldest_open_seconds",
        "Age of the oldest open transition request by target stage",
        labels=["to_stage"],
    )
    rows = (
        TransitionRequest.objects.filter(status=TransitionRequest.Status.OPEN)
        .values("to_stage")
        .annotate(first=Min("created_at"), **aggregates)
    )
    for row in rows:
        for label, _ in AGE_CLASSES:
            open_requests.add_metric([row["to_stage"], label], row[label])
        oldest.add_metric([row["to_stage"]], (now - row["first"]).total_seconds())
    yield open_requests
    yield oldest
    reviews = CounterMetricFamily(
        "custody_reviews", "Reviews recorded (approvals and rejections)", labels=["decision"]
    )
    counted = dict(Review.objects.values_list("decision").annotate(n=Count("id")))
    for decision in Review.Decision.values:
        reviews.add_metric([decision], counted.get(decision, 0))
    yield reviews


def _registry() -> Iterable[Metric]:
    from registry.models import ModelVersion

    production = ModelVersion.objects.filter(current_stage="Production", deleted=False).count()
    yield GaugeMetricFamily(
        "custody_production_versions", "Model versions in Production", value=production
    )


def _audit() -> Iterable[Metric]:
    from audit.models import AuditChainHead, AuditCheckpoint

    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    yield CounterMetricFamily(
        "custody_audit_events", "Audit events written (the chain's length)", value=head
    )
    yield GaugeMetricFamily(
        "custody_audit_chain_head_seq", "Sequence number of the audit chain's head", value=head
    )
    last = AuditCheckpoint.objects.aggregate(seq=Max("seq"), at=Max("created_at"))
    if last["at"] is not None:
        yield GaugeMetricFamily(
            "custody_audit_checkpoint_age_seconds",
            "Time since the last signed audit checkpoint",
            value=(timezone.now() - last["at"]).total_seconds(),
        )
        yield GaugeMetricFamily(
            "custody_audit_events_unsigned",
            "Audit events after the last signed checkpoint",
            value=max(0, head - last["seq"]),
        )


def _outbox() -> Iterable[Metric]:
    from outbox.models import OutboxJob
    from outbox.services import MAX_ATTEMPTS

    now = timezone.now()
    pending = OutboxJob.objects.filter(done_at__isnull=True).aggregate(
        waiting=Count("id", filter=Q(attempts__lt=MAX_ATTEMPTS)),
        given_up=Count("id", filter=Q(attempts__gte=MAX_ATTEMPTS)),
        oldest=Min("created_at", filter=Q(attempts__lt=MAX_ATTEMPTS)),
    )
    jobs = GaugeMetricFamily(
        "custody_outbox_jobs_pending",
        "Post-commit jobs not done: waiting (will be sent or retried) or given_up (needs a "
        "person, see the admin)",
        labels=["state"],
    )
    jobs.add_metric(["waiting"], pending["waiting"])
    jobs.add_metric(["given_up"], pending["given_up"])
    yield jobs
    age = (now - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0
    yield GaugeMetricFamily(
        "custody_outbox_oldest_pending_seconds", "Age of the oldest job not done", value=age
    )


def _queue() -> Iterable[Metric]:
    """Messages waiting in the Celery queue (Redis list `celery`), when a broker is used."""
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        depth = client.llen("celery")
    finally:
        client.close()
    yield GaugeMetricFamily(
        "custody_celery_queue_depth", "Messages waiting in the Celery queue", value=depth
    )

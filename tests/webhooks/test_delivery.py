"""Webhooks through /api/v1 and the MLflow routes with Django's test client, delivered to a
real local receiver by the outbox task (in-process Celery): enqueueing in the change's
transaction, signatures, retries with backoff, order per model, replay, automatic disabling
with a notice, secrets at rest, and who may manage which webhook."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from outbox import services as outbox
from outbox.models import OutboxJob
from tests.personas import Persona
from webhooks.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

SECRET = "receiver-secret"


@pytest.fixture
def boss():
    return Persona("boss", "admin")


@pytest.fixture
def alice():
    return Persona("alice", "data-scientist")


def _model(who: Persona, name: str = "fraud") -> None:
    assert who.mlflow("registered-models/create", {"name": name}).status_code == 200


def _version(who: Persona, name: str = "fraud") -> str:
    """A version from a new run; answers its source."""
    experiment = who.mlflow("experiments/create", {"name": f"e-{uuid.uuid4().hex}"})
    run = who.mlflow("runs/create", {"experiment_id": experiment.json()["experiment_id"]})
    source = f"runs:/{run.json()['run']['info']['run_id']}/model"
    response = who.mlflow("model-versions/create", {"name": name, "source": source})
    assert response.status_code == 200, response.content
    return source


def _hook(who: Persona, url: str, events: list[str], **extra) -> dict:
    response = who.post("webhooks", {"name": "ci", "url": url, "events": events, **extra})
    assert response.status_code == 201, response.content
    return response.json()


def test_a_version_reaches_the_receiver_signed_once(
    boss, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = receiver(secret=SECRET)
    _model(boss)
    created = _hook(boss, hook.url, ["model_version.created"], secret=SECRET)
    assert created["secret"] == SECRET  # answered this once
    with django_capture_on_commit_callbacks(execute=True):
        source = _version(boss)
    (arrival,) = hook.wait_for(1)
    assert arrival.signature_ok is True
    assert arrival.body["entity"] == "model_version" and arrival.body["action"] == "created"
    assert arrival.body["data"] == {
        "name": "fraud",
        "version": "1",
        "source": source,
        "run_id": source.split("/")[1],
        "tags": {},
        "description": None,
    }
    assert len(hook.arrivals) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.delivery_id == arrival.delivery_id, delivery.last_error
    assert delivery.last_error == ""
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    log = boss.get(f"webhooks/{created['webhook_id']}/deliveries").json()["deliveries"]
    assert log[0]["status"] == "delivered" and log[0]["latency_ms"] is not None
    # Never shown again, and not stored in the clear.
    assert "secret" not in boss.get(f"webhooks/{created['webhook_id']}").json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM webhooks_webhook")
        (stored,) = cursor.fetchone()
    assert stored and SECRET not in stored


def test_a_rolled_back_change_sends_nothing(boss, receiver, allow_loopback):
    hook = receiver(secret=SECRET)
    _model(boss)
    _hook(boss, hook.url, ["model_version_tag.set"], secret=SECRET)
    # A tag on a version that does not exist: refused, nothing recorded, nothing queued.
    response = boss.mlflow(
        "model-versions/set-tag", {"name": "fraud", "version": "9", "key": "k", "value": "v"}
    )
    assert response.status_code == 404
    assert not WebhookDelivery.objects.exists()
    assert not OutboxJob.objects.filter(task="webhooks.deliver").exists()


def _attempts_counted() -> dict[str, float]:
    """custody_webhook_deliveries_total by outcome, as /metrics shows it."""
    from django.test import Client, override_settings
    from prometheus_client.parser import text_string_to_metric_families

    token = "scrape-" + "w" * 32
    with override_settings(CUSTODY_METRICS_TOKEN=token):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == "custody_webhook_deliveries_total"
    }


def test_failed_attempts_back_off_then_succeed_with_the_same_delivery_id(
    boss, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    counted = _attempts_counted()
    hook = receiver(secret=SECRET, status=503)
    _model(boss)
    _hook(boss, hook.url, ["model_version.created"], secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        _version(boss)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 503)
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 9 <= wait <= 11  # CUSTODY_WEBHOOK_RETRY_BASE_SECONDS
    assert outbox.relay() == 0  # not due yet
    job = OutboxJob.objects.get(task="webhooks.deliver", done_at__isnull=True)
    # Second failure: the wait doubles.
    _make_due(job, delivery)
    assert outbox.relay() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 19 <= wait <= 21
    hook.status = 200
    job = OutboxJob.objects.get(task="webhooks.deliver", done_at__isnull=True)
    _make_due(job, delivery)
    assert outbox.relay() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert {a.delivery_id for a in hook.arrivals} == {delivery.delivery_id}
    assert len(hook.arrivals) == 3
    now = _attempts_counted()
    assert now.get("failed", 0) - counted.get("failed", 0) == 2
    assert now.get("delivered", 0) - counted.get("delivered", 0) == 1


def _make_due(job: OutboxJob, delivery: WebhookDelivery) -> None:
    past = timezone.now() - timedelta(seconds=1)
    OutboxJob.objects.filter(pk=job.pk).update(available_at=past)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=past)


def test_events_of_one_model_arrive_in_order(
    boss, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = receiver(secret=SECRET, status=500)
    _model(boss)
    _hook(boss, hook.url, ["model_version.created", "model_version_tag.set"], secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        _version(boss)
        tag = {"name": "fraud", "version": "1", "key": "k", "value": "v"}
        assert boss.mlflow("model-versions/set-tag", tag).status_code == 200
    # The first failed; the second waits for it instead of overtaking it.
    first, second = WebhookDelivery.objects.order_by("id")
    assert [a.event for a in hook.arrivals] == ["model_version.created"]
    assert (first.status, second.status, second.attempts) == ("pending", "pending", 0)
    hook.status = 200
    _make_due(OutboxJob.objects.get(task="webhooks.deliver", done_at__isnull=True), first)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.relay()
    assert hook.events() == ["model_version.created", "model_version_tag.set"]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_failing_webhook_is_disabled_with_a_notice_and_replayed_after(
    boss, receiver, allow_loopback, settings, django_capture_on_commit_callbacks
):
    settings.CUSTODY_WEBHOOK_DISABLE_AFTER_FAILURES = 2
    boss.user.email = "boss@example.com"
    boss.user.save(update_fields=["email"])
    hook = receiver(secret=SECRET, status=500)
    _model(boss)
    created = _hook(boss, hook.url, ["model_version.created"], secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        _version(boss)
        _version(boss)
    # Both events belong to one model: the second waits. Make the first fail again.
    first = WebhookDelivery.objects.order_by("id").first()
    _make_due(OutboxJob.objects.get(task="webhooks.deliver", done_at__isnull=True), first)
    with django_capture_on_commit_callbacks(execute=True):
        outbox.relay()
    webhook = Webhook.objects.get()
    assert webhook.status == "DISABLED" and "2 delivery attempts failed" in webhook.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    assert AuditEvent.objects.filter(action="webhook.disable").exists()
    (notice,) = mail.outbox
    assert notice.to == ["boss@example.com"] and "disabled" in notice.subject
    deliveries = boss.get(f"webhooks/{created['webhook_id']}/deliveries").json()["deliveries"]
    replay = f"webhooks/{created['webhook_id']}/deliveries/{deliveries[-1]['delivery_id']}/replay"
    refused = boss.post(replay)
    assert refused.status_code == 400 and "disabled" in refused.json()["error"]["message"]
    # Fixed receiver, enabled again, replayed: the same delivery id, in order.
    hook.status = 200
    enabled = boss.client.patch(
        f"/api/v1/webhooks/{created['webhook_id']}",
        {"status": "ACTIVE"},
        content_type="application/json",
    )
    assert enabled.status_code == 200 and enabled.json()["consecutive_failures"] == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert boss.post(replay).status_code == 202
    assert hook.events() == ["model_version.created"]
    assert hook.processed.keys() == {deliveries[-1]["delivery_id"]}
    again = boss.post(replay)
    assert again.status_code == 400 and "only failed deliveries" in again.json()["error"]["message"]


def test_custody_events_and_slack_format(
    boss, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    hook = receiver()
    _model(boss)
    policy = {"production_approvals": 0, "staging_approvals": 0, "required_tags": []}
    policy |= {"require_model_card": False, "metric_gates": []}
    _hook(
        boss,
        hook.url,
        ["model_version.stage_changed", "policy.updated"],
        format="slack",
        model="fraud",
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert boss.put("models/fraud/policy", policy).status_code == 200
        _version(boss)
        assert boss.transition(1, "Staging").status_code == 200
    texts = [a.body["text"] for a in hook.arrivals]
    assert texts[0].startswith("[Custody] policy.updated: fraud")
    assert "model_version.stage_changed: fraud v1" in texts[1] and "to_stage=Staging" in texts[1]


def test_who_manages_which_webhook(boss, alice, receiver, allow_loopback):
    url = receiver().url
    _model(alice)  # alice created it: she manages it
    _model(boss, "other")
    mine = _hook(alice, url, ["model_version.created"], model="fraud")
    assert mine["model"] == "fraud" and len(mine["secret"]) > 20  # generated
    refused = alice.post("webhooks", {"name": "x", "url": url, "events": ["model_version.created"]})
    assert refused.status_code == 403 and "administrators" in refused.json()["error"]["message"]
    other = alice.post(
        "webhooks", {"name": "x", "url": url, "events": ["model_version.created"], "model": "other"}
    )
    assert other.status_code == 403
    audit_event = alice.post(
        "webhooks",
        {"name": "x", "url": url, "events": ["audit_checkpoint.signed"], "model": "fraud"},
    )
    assert (
        audit_event.status_code == 400 and "registry-wide" in audit_event.json()["error"]["message"]
    )
    registry_wide = _hook(boss, url, ["audit_checkpoint.signed"])
    assert alice.get(f"webhooks/{registry_wide['webhook_id']}").status_code == 404
    assert [w["webhook_id"] for w in alice.get("webhooks").json()["webhooks"]] == [
        mine["webhook_id"]
    ]
    assert len(boss.get("webhooks").json()["webhooks"]) == 2
    # MLflow's webhook routes are registry-wide: administrators only.
    listed = alice.mlflow("webhooks", {}, "GET")
    assert listed.status_code == 403
    assert boss.get(f"webhooks/{mine['webhook_id']}").status_code == 200
    assert alice.get("webhooks/not-an-id").status_code == 400


def test_audit_checkpoints_reach_registry_wide_webhooks(
    boss, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    from audit import services as audit_services

    hook = receiver(secret=SECRET)
    _hook(boss, hook.url, ["audit_checkpoint.signed"], secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = audit_services.checkpoint_create()
    (arrival,) = hook.wait_for(1)
    assert arrival.body["data"]["seq"] == checkpoint.seq
    assert arrival.signature_ok is True


def test_the_delivery_log_in_the_admin_with_replay(
    boss, alice, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    from django.test import Client

    hook = receiver(secret=SECRET, status=500)
    _model(boss)
    _hook(boss, hook.url, ["model_version.created"], secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        _version(boss)
    WebhookDelivery.objects.update(status="failed")  # as if its attempts were used up
    delivery = WebhookDelivery.objects.get()
    page = "/admin/webhooks/webhookdelivery/"
    console = Client()
    console.force_login(boss.user)
    listed = console.get(page)
    assert listed.status_code == 200
    assert delivery.delivery_id in listed.content.decode()
    outsider = Client()
    outsider.force_login(alice.user)
    assert outsider.get(page).status_code in (302, 403)
    hook.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        replayed = console.post(
            page, {"action": "replay", "_selected_action": [delivery.pk]}, follow=True
        )
    assert "Replaying 1 deliveries." in replayed.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [a.delivery_id for a in hook.arrivals] == [delivery.delivery_id] * 2

"""/metrics, /ready, the request id and the JSON request log, through HTTP."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import set_open_policy

pytestmark = pytest.mark.django_db

TOKEN = "scrape-" + "s" * 32


@pytest.fixture
def scrape(settings):
    settings.CUSTODY_METRICS_TOKEN = TOKEN

    def scrape() -> dict[tuple[str, tuple], float]:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return scrape


def test_metrics_are_off_without_a_token_and_refused_without_the_right_one(settings):
    settings.CUSTODY_METRICS_TOKEN = ""
    off = Client().get("/metrics")
    assert off.status_code == 404 and b"CUSTODY_METRICS_TOKEN" in off.content
    settings.CUSTODY_METRICS_TOKEN = TOKEN
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": TOKEN}):
        refused = Client().get("/metrics", **header)
        assert refused.status_code == 401, header
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert b"custody_" not in refused.content


def _promotable(api, name: str, versions: int = 2) -> None:
    run = api.run(api.experiment())["info"]["run_id"]
    assert api.post("registered-models/create", {"name": name}).status_code == 200
    set_open_policy(name)
    for _ in range(versions):
        created = api.post("model-versions/create", {"name": name, "source": f"runs:/{run}/m"})
        assert created.status_code == 200, created.content


def test_metrics_count_requests_by_route_and_show_the_domain(api, admin_user, scrape):
    from governance.models import ModelPolicy

    before = scrape()
    name = "metered"
    _promotable(api, name)
    admin = Client()
    admin.force_login(admin_user)
    move = "/api/2.0/mlflow/model-versions/transition-stage"
    for version, stage in ((1, "Staging"), (1, "Production"), (2, "Staging")):
        moved = admin.post(
            move,
            {"name": name, "version": str(version), "stage": stage},
            content_type="application/json",
        )
        assert moved.status_code == 200, moved.content
    ModelPolicy.objects.filter(model__name=name).update(production_approvals=1)
    waiting = admin.post(
        move, {"name": name, "version": "2", "stage": "Production"}, content_type="application/json"
    )
    assert waiting.status_code == 400  # an open request now waits for a reviewer
    assert api.get("registered-models/get", {"name": "missing"}).status_code == 404
    for made_up in ("BREW", "PROPFIND-1", "X" * 40):  # label values stay few
        Client().generic(made_up, "/health")

    after = scrape()
    route = "api/2.0/mlflow/model-versions/transition-stage"
    key = ("custody_http_requests_total", (("method", "POST"), ("route", route), ("status", "200")))
    assert after[key] - before.get(key, 0) == 3
    refused = key[:1] + ((("method", "POST"), ("route", route), ("status", "400")),)
    assert after[refused] - before.get(refused, 0) == 1
    count = ("custody_http_request_duration_seconds_count", (("method", "POST"), ("route", route)))
    assert after[count] - before.get(count, 0) == 4
    queries = ("custody_http_request_db_queries_count", (("route", route),))
    assert after[queries] - before.get(queries, 0) == 4
    assert after[("custody_production_versions", ())] == 1
    methods = {
        dict(labels)["method"] for name, labels in after if name.startswith("custody_http_requests")
    }
    # Other tests in this process may have sent PATCH, HEAD or OPTIONS.
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert not {"BREW", "PROPFIND-1", "X" * 40} & methods
    assert "other" in methods
    assert (
        after[
            ("custody_transition_requests_open", (("age", "under_1h"), ("to_stage", "Production")))
        ]
        == 1
    )
    assert (
        after[
            ("custody_transition_requests_open", (("age", "over_7d"), ("to_stage", "Production")))
        ]
        == 0
    )
    assert after[("custody_audit_events_total", ())] > before.get(
        ("custody_audit_events_total", ()), 0
    )
    assert ("custody_reviews_total", (("decision", "approve"),)) in after
    assert ("custody_outbox_jobs_pending", (("state", "waiting"),)) in after


def test_ready_times_each_check_and_reports_unapplied_migrations():
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    from core import readiness

    response = Client().get("/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["checks"] == {"database": "ok", "migrations": "ok", "artifact_store": "ok"}
    assert set(body["ms"]) == set(body["checks"])
    assert all(isinstance(v, float | int) and v >= 0 for v in body["ms"].values())

    # An upgrade whose migration job has not run yet: the newest outbox migration is missing.
    recorder = MigrationRecorder(connection)
    newest = max(name for app, name in recorder.applied_migrations() if app == "outbox")
    recorder.record_unapplied("outbox", newest)
    readiness._migrated = False
    try:
        response = Client().get("/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"] == "failing: not migrated"
    finally:
        recorder.record_applied("outbox", newest)
        readiness._migrated = False
    assert Client().get("/ready").status_code == 200


def test_ready_checks_redis_when_configured(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"
    up = Client().get("/ready")
    assert up.status_code == 200 and up.json()["checks"]["broker"] == "ok"
    assert "broker" in up.json()["ms"]
    settings.REDIS_URL = "redis://127.0.0.1:1/7"  # nothing listens on port 1
    down = Client().get("/ready")
    assert down.status_code == 503
    assert down.json()["checks"]["broker"] == "failing: unavailable"


def test_every_error_body_carries_the_request_id(api, scientist_token):
    mlflow = api.get("registered-models/get", {"name": "nope"})
    assert mlflow.status_code == 404
    assert set(mlflow.json()) == {"error_code", "message", "request_id"}
    assert mlflow.json()["request_id"] == mlflow["X-Request-ID"] != ""

    v1 = api.client.get("/api/v1/models/nope/policy")
    assert v1.status_code == 404
    assert v1.json()["error"]["request_id"] == v1["X-Request-ID"]

    unauthenticated = Client().get(
        "/api/2.0/mlflow/experiments/get", {"experiment_id": "0"}, HTTP_AUTHORIZATION="Bearer x"
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["request_id"] == unauthenticated["X-Request-ID"]

    page = Client().get("/no-such-page")
    assert page.status_code == 404
    assert f"Request id: {page['X-Request-ID']}" in page.content.decode()

    ids = {mlflow["X-Request-ID"], v1["X-Request-ID"], page["X-Request-ID"]}
    assert len(ids) == 3  # one per request
    sent = api.client.get("/api/v1/me", HTTP_X_REQUEST_ID="chosen-by-the-client")
    assert sent["X-Request-ID"] != "chosen-by-the-client"  # audit events carry it: not trusted


def test_audit_events_carry_the_request_id(api):
    from audit.models import AuditEvent

    response = api.post("registered-models/create", {"name": "audited-request"})
    assert response.status_code == 200
    event = AuditEvent.objects.get(object_name="audited-request", action__contains="create")
    assert event.request_id == response["X-Request-ID"]


def test_one_json_line_per_request(api, scientist, caplog):
    from django.conf import settings as django_settings

    caplog.set_level(logging.INFO, logger="custody.request")
    response = api.get("experiments/get", {"experiment_id": "0"})
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "custody.request"]
    assert len(records) == 1
    handler = django_settings.LOGGING["formatters"]["json"]
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(handler["fmt"], rename_fields=handler["rename_fields"])
    line = formatter.format(records[0])
    assert "\n" not in line
    logged = json.loads(line)
    assert logged["request_id"] == response["X-Request-ID"]
    assert logged["user"] == "alice"
    assert logged["route"] == "api/2.0/mlflow/experiments/get"
    assert logged["status"] == 200
    assert logged["queries"] >= 1 and logged["duration_ms"] >= 0
    assert logged["level"] == "INFO" and logged["logger"] == "custody.request"


def test_a_deadlock_victim_gets_a_503_it_may_retry_not_an_internal_error(api, monkeypatch):
    """The soak (bench/soak.py) met PostgreSQL deadlocks between the audit chain head and a
    cache version row; whatever the cause, the victim's change was rolled back, so the client
    is told so with a status the MLflow client retries."""
    import psycopg
    from django.db import OperationalError

    from registry import services

    def deadlocked(**_):
        try:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        except psycopg.Error as exc:
            raise OperationalError("deadlock detected") from exc

    monkeypatch.setattr(services, "registered_model_create", deadlocked)
    response = api.post("registered-models/create", {"name": "victim"})
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "rolled it back" in body["message"] and body["request_id"] == response["X-Request-ID"]
    from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES

    assert response.status_code in _TRANSIENT_FAILURE_RESPONSE_CODES

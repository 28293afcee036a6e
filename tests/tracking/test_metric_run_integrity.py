"""A metric point belongs to an existing run whatever writes it: the database's triggers
(tracking migration 0011) keep the rule a foreign key kept before, checking each statement's
points once rather than each point."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from tracking.models import Metric, Run

pytestmark = pytest.mark.django_db

MISSING = "f" * 32


def _logged_run(api) -> str:
    run_id = api.run(api.experiment("integrity"))["info"]["run_id"]
    metrics = [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1, "step": s} for s in range(5)]
    response = api.post("runs/log-batch", {"run_id": run_id, "metrics": metrics})
    assert response.status_code == 200, response.content
    return run_id


def _insert_sql(run_ids: list[str]) -> tuple[str, list]:
    rows = ", ".join(["(%s, 'loss', 0.5, false, 1, %s, '', '', '')"] * len(run_ids))
    params = [value for i, run_id in enumerate(run_ids) for value in (run_id, 100 + i)]
    return (
        "INSERT INTO tracking_metric (run_id, key, value, is_nan, timestamp, step, model_id, "
        f"dataset_name, dataset_digest) VALUES {rows}",
        params,
    )


def test_a_point_of_a_missing_run_is_refused_and_its_statement_writes_nothing(api):
    run_id = _logged_run(api)
    for run_ids in ([MISSING], [run_id, MISSING, run_id]):
        sql, params = _insert_sql(run_ids)
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    with pytest.raises(IntegrityError), transaction.atomic():
        Metric.objects.bulk_create(
            [Metric(run_id=MISSING, key="loss", value=0.1, timestamp=1, step=9)]
        )
    assert Metric.objects.filter(run_id=run_id).count() == 5
    assert not Metric.objects.filter(run_id=MISSING).exists()
    # Points of existing runs, in one statement, are written as before.
    sql, params = _insert_sql([run_id, run_id])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert Metric.objects.filter(run_id=run_id).count() == 7


def test_a_point_cannot_be_moved_to_a_missing_run(api):
    run_id = _logged_run(api)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracking_metric SET run_id = %s WHERE run_id = %s", [MISSING, run_id]
        )
    assert Metric.objects.filter(run_id=run_id).count() == 5


def test_a_run_with_points_cannot_be_deleted_before_them(api):
    run_id = _logged_run(api)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM tracking_run WHERE run_id = %s", [run_id])
    assert Run.objects.filter(pk=run_id).exists()
    # Deleting through the model takes the points first (CASCADE), as before.
    Run.objects.filter(pk=run_id).delete()
    assert not Metric.objects.filter(run_id=run_id).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_points_being_written_hold_their_run_against_a_deletion(api):
    """As the foreign key did: the writer locks the run (FOR KEY SHARE) until it commits, so
    a concurrent deletion waits, then sees the points and is refused."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; run with DATABASE_URL=postgres://...")
    import psycopg
    from django.conf import settings

    run_id = _logged_run(api)
    db = settings.DATABASES["default"]
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(*_insert_sql([run_id]))
            # Another session deletes the run's stored points, then the run: the run is held.
            other.execute("SET lock_timeout = '500ms'")
            other.execute("DELETE FROM tracking_metric WHERE run_id = %s", [run_id])
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM tracking_run WHERE run_id = %s", [run_id])
            other.rollback()
        assert Metric.objects.filter(run_id=run_id).count() == 6
    finally:
        other.close()

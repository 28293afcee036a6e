"""Superseded Staging versions are archived after the model policy's grace period, counted
from the promotion: neither the task queued on commit nor the periodic reconciliation may
archive them earlier."""

from __future__ import annotations

import pytest
from django.db.models import F

from governance.models import ModelPolicy
from registry import services
from registry.models import ModelVersion
from registry.tasks import reconcile_superseded_versions
from tests.conftest import set_open_policy
from tracking import services as tracking

pytestmark = pytest.mark.django_db


def stages() -> list[str]:
    return list(
        ModelVersion.objects.filter(registered_model__name="m")
        .order_by("version")
        .values_list("current_stage", flat=True)
    )


@pytest.fixture
def model(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    experiment = tracking.experiment_create(name="grace")
    run = tracking.run_create(
        experiment_id=str(experiment.experiment_id),
        user_id="t",
        run_name="r",
        start_time=1,
        tags=[],
    )
    services.registered_model_create(name="m")
    for _ in range(3):
        services.model_version_create(name="m", source=f"runs:/{run.run_id}/m")
    set_open_policy("m")
    for version in (1, 2):
        services.model_version_transition_stage(name="m", version=version, stage="Staging")


def test_grace_period_from_the_policy_holds_back_archiving(
    model, django_capture_on_commit_callbacks
):
    ModelPolicy.objects.filter(model__name="m").update(archive_grace_seconds=3600)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_transition_stage(name="m", version=2, stage="Production")
    assert reconcile_superseded_versions() == {}
    assert stages() == ["Staging", "Production", "None"]
    # Two hours later (every stage change moved back in time), the reconciliation archives it.
    ModelVersion.objects.update(stage_since=F("stage_since") - 7_200_000)
    assert list(reconcile_superseded_versions().values()) == [[1]]
    assert stages() == ["Archived", "Production", "None"]
    assert reconcile_superseded_versions() == {}  # idempotent


def test_no_grace_archives_on_commit(model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_transition_stage(name="m", version=2, stage="Production")
    assert stages() == ["Archived", "Production", "None"]


def test_a_version_put_back_into_staging_later_stays(model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_transition_stage(name="m", version=2, stage="Production")
        services.model_version_transition_stage(name="m", version=1, stage="None")
        services.model_version_transition_stage(name="m", version=1, stage="Staging")
    assert reconcile_superseded_versions() == {}
    assert stages() == ["Staging", "Production", "None"]

"""What exists: registered models, their versions (the stage is a protected state machine),
tags, aliases and deployments."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_fsm import FSMField, FSMModelMixin, transition

from registry.transitions import ALLOWED, Stage, sources_of


class RegisteredModel(models.Model):
    name = models.CharField(max_length=500, unique=True)
    # casefold(NFKC(name)): no two models whose names look the same.
    name_key = models.CharField(max_length=500, unique=True)
    description = models.TextField(blank=True)
    creation_timestamp = models.BigIntegerField()
    last_updated_timestamp = models.BigIntegerField()
    user_id = models.CharField(max_length=256, blank=True)
    # Version numbers are max+1 and never reused, even after deletes.
    last_version = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-last_updated_timestamp"], name="rm_updated_idx")]

    def __str__(self) -> str:
        return self.name


class RegisteredModelTag(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="uniq_rm_tag")]


class ModelVersion(FSMModelMixin, models.Model):
    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.IntegerField()
    # Changes only through registry.services.model_version_transition_stage.
    current_stage = FSMField(
        default=Stage.NONE, choices=Stage.choices, protected=True, max_length=16
    )
    description = models.TextField(blank=True)
    source = models.CharField(max_length=1000)
    storage_location = models.CharField(max_length=1000)
    run_id = models.CharField(max_length=32, blank=True)
    run_link = models.CharField(max_length=1000, blank=True)
    # The MLflow 3 logged model this version was registered from (models:/m-...), if any.
    model_id = models.CharField(max_length=64, blank=True)
    user_id = models.CharField(max_length=256, blank=True)
    creation_timestamp = models.BigIntegerField()
    last_updated_timestamp = models.BigIntegerField()
    # When the version entered its current stage (ms): the archiving grace period counts
    # from the Production version's stage_since, whatever else touches the row.
    stage_since = models.BigIntegerField(default=0)
    # Set when the version first enters Production and never cleared: only such a version may
    # be rolled back into Production from Archived.
    was_in_production = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["registered_model", "version"], name="uniq_model_version"
            ),
            # The single-Production invariant, held by the database itself.
            models.UniqueConstraint(
                fields=["registered_model"],
                condition=Q(current_stage="Production"),
                name="one_production_version_per_model",
            ),
            models.CheckConstraint(
                condition=~Q(deleted=True, current_stage="Production"),
                name="deleted_version_not_in_production",
            ),
        ]
        indexes = [
            # models:/name/<Stage>: one index lookup.
            models.Index(
                fields=["registered_model", "current_stage", "deleted", "-version"],
                name="mv_stage_idx",
            ),
            models.Index(fields=["run_id"], name="mv_run_idx"),
            # A logged model's versions (its mlflow.modelVersions tag, lineage).
            models.Index(fields=["model_id"], name="mv_logged_model_idx"),
            models.Index(fields=["-last_updated_timestamp"], name="mv_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"

    # The allowed moves come from registry.transitions.ALLOWED, the one table of them.
    @transition(field=current_stage, source=sources_of(Stage.STAGING), target=Stage.STAGING)
    def to_staging(self) -> None:
        pass

    @transition(
        field=current_stage,
        source=sources_of(Stage.PRODUCTION),
        target=Stage.PRODUCTION,
        conditions=[lambda mv: mv.current_stage != Stage.ARCHIVED or mv.was_in_production],
    )
    def to_production(self) -> None:
        pass

    @transition(field=current_stage, source=sources_of(Stage.ARCHIVED), target=Stage.ARCHIVED)
    def to_archived(self) -> None:
        pass

    @transition(field=current_stage, source=sources_of(Stage.NONE), target=Stage.NONE)
    def to_none(self) -> None:
        pass

    TRANSITION_METHODS: dict[str, str] = {
        Stage.STAGING: "to_staging",
        Stage.PRODUCTION: "to_production",
        Stage.ARCHIVED: "to_archived",
        Stage.NONE: "to_none",
    }
    assert set(TRANSITION_METHODS) == set(ALLOWED)


class ModelVersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="uniq_mv_tag")]


class RegisteredModelAlias(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="uniq_rm_alias")]


class Deployment(models.Model):
    """A serving endpoint serving one model version from `since` until `until` (open: now)."""

    endpoint = models.CharField(max_length=255)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    model_uri = models.CharField(max_length=1000)
    since = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)
    recorded_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"], condition=Q(until__isnull=True), name="one_open_deployment"
            )
        ]
        indexes = [models.Index(fields=["endpoint", "-since"], name="deployment_endpoint_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint} -> {self.model_uri}"


class RegisteredModelPermission(models.Model):
    """A grant on one registered model to a user or a group (role)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(
        "auth.User", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    level = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="model_grant_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["model", "user"],
                condition=Q(user__isnull=False),
                name="uniq_model_user_grant",
            ),
            models.UniqueConstraint(
                fields=["model", "group"],
                condition=Q(group__isnull=False),
                name="uniq_model_group_grant",
            ),
        ]

"""What governs promotions: each model's policy, transition requests and their reviews,
comments, and model cards."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models import ModelVersion, RegisteredModel


class ModelPolicy(models.Model):
    """A model's rules. Created from the server default (settings.CUSTODY_DEFAULT_POLICY) the
    first time anyone reads or changes it; from then on it is the model's own."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="policy")
    required_tags = models.JSONField(default=list)
    require_tags_at_registration = models.BooleanField(default=False)
    # [{"metric": "val_auc", "op": ">=", "value": 0.9}], checked on the source run.
    metric_gates = models.JSONField(default=list)
    staging_approvals = models.PositiveSmallIntegerField(default=0)
    production_approvals = models.PositiveSmallIntegerField(default=1)
    # Approvals for a version to leave Production (to Staging, None or Archived), which takes
    # it out of serving. None: the same as production_approvals, whatever that is set to.
    # The archiving that an approved promotion does to the previous Production version is
    # part of that promotion and needs nothing more.
    demotion_approvals = models.PositiveSmallIntegerField(null=True, blank=True)
    # Approvals to roll an archived version that was in Production before back into it
    # (Archived → Production). 0: an immediate rollback, recorded and audited as such.
    rollback_approvals = models.PositiveSmallIntegerField(default=1)
    # Empty: anyone with the reviewer (or admin) role who may read the model.
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    exclude_run_author = models.BooleanField(default=True)
    require_model_card = models.BooleanField(default=True)
    # Aliases that may only point at the model's Production version.
    protected_aliases = models.JSONField(default=list)
    # None: the server's CUSTODY_ARCHIVE_GRACE_SECONDS.
    archive_grace_seconds = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "model policies"

    def __str__(self) -> str:
        return f"policy of {self.model.name}"

    @property
    def leave_production_approvals(self) -> int:
        if self.demotion_approvals is None:
            return self.production_approvals
        return self.demotion_approvals


class TransitionRequest(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        APPLIED = "applied"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        # The version's stage changed underneath the request.
        STALE = "stale"

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="transition_requests"
    )
    from_stage = models.CharField(max_length=16)
    to_stage = models.CharField(max_length=16)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Others who asked for the same move while the request was open ("opens or reuses"):
    # they are requesters too, so none of them may review it.
    co_requesters = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    comment = models.TextField(blank=True)
    archive_existing_versions = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What the decision rested on (selectors.decision_basis: both versions' metrics and
    # lineage, the policy checks, the card, the effects), written in the transaction that
    # applies, rejects or cancels the request. Recomputing it later would compare with
    # whatever is in Production by then, so a decided request shows this instead.
    decided_basis = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            # "Opens or reuses": one open request per version and target stage.
            models.UniqueConstraint(
                fields=["version", "to_stage"],
                condition=Q(status="open"),
                name="one_open_request_per_version_stage",
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="tr_status_idx")]

    def __str__(self) -> str:
        return f"request #{self.pk}: {self.version} → {self.to_stage}"


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(TransitionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField()
    # SHA-256 of what the reviewer decided on (the source run's params, tags and metrics, and
    # the model card; policy.review_basis): an approval counts only while it still matches.
    basis = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            # A replayed or double-submitted review has a single effect.
            models.UniqueConstraint(fields=["request", "reviewer"], name="one_review_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.reviewer} on #{self.request_id}"


class Comment(models.Model):
    """A comment on a model version, optionally on one of its transition requests."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="comments")
    request = models.ForeignKey(
        TransitionRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="comments"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"comment #{self.pk} on {self.version}"


CARD_FIELDS: dict[str, str] = {
    "intended_use": "Intended use",
    "out_of_scope_uses": "Out-of-scope uses",
    "training_data": "Training data",
    "evaluation_results": "Evaluation results (overall)",
    "evaluation_by_group": "Evaluation results by group",
    "known_biases": "Known biases",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
    "caveats": "Caveats and recommendations",
}


class ModelCard(models.Model):
    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="card")
    intended_use = models.TextField(blank=True)
    out_of_scope_uses = models.TextField(blank=True)
    training_data = models.TextField(blank=True)
    evaluation_results = models.TextField(blank=True)
    evaluation_by_group = models.TextField(blank=True)
    known_biases = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    caveats = models.TextField(blank=True)
    updated_at = models.DateTimeField()
    updated_by = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"model card of {self.version}"

    def missing_fields(self) -> list[str]:
        return [field for field in CARD_FIELDS if not getattr(self, field).strip()]


class AuditExport(models.Model):
    """A large audit export written by a Celery task to the artifact store. The job's row
    has been governance's since the store lived in tracking; the file is audit's
    (audit.export.write_export)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    format = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"audit export #{self.pk} ({self.format}, {self.status})"

    @property
    def storage_path(self) -> str:
        # Server-chosen; no user input reaches the path.
        return f"audit-exports/{self.pk}.{self.format}"

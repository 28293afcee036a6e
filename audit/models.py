"""The append-only, hash-chained audit trail.

It sits below every other app (tracking, registry and governance all write to it), so the
one-way dependency between those apps holds. Events are written by `audit.services.record`
inside the transaction of the change they describe."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success"
        DENIED = "denied"
        REFUSED = "refused"

    # seq, prev_hash and hash are empty while the event waits to be chained (PostgreSQL:
    # the chainer fills them right after the recording transaction commits; see
    # audit.services and docs/audit.md, "Concurrency").
    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    created_at = models.DateTimeField()
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    auth_method = models.CharField(max_length=32, blank=True)
    token_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255)
    object_name = models.CharField(max_length=500, blank=True)
    model_name = models.CharField(max_length=500, blank=True, db_index=True)
    model_version = models.IntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    hash = models.CharField(max_length=64, blank=True, default="", db_default="")

    objects = AuditEventQuerySet.as_manager()

    # The chain's order: events still waiting to be chained come last, in the order they
    # were recorded, which is the order they will be chained in.
    CHAIN_ORDER = (F("seq").asc(nulls_last=True), "id")

    class Meta:
        ordering = [F("seq").asc(nulls_last=True), "id"]  # CHAIN_ORDER
        indexes = [
            models.Index(fields=["id"], condition=Q(seq__isnull=True), name="audit_unchained_idx"),
            models.Index(fields=["created_at"], name="audit_created_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor_username", "seq"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")


class AuditChainHead(models.Model):
    """One row: the last chained sequence number and hash. Only the chainer moves it, one
    chainer at a time (audit.services.chain_pending), which makes the sequence gap-free and
    the chain linear."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_seq}"


class AuditCheckpoint(models.Model):
    """A signed statement "the chain reached event `seq` with hash `hash`". Deleting events
    from the tail leaves the chain internally consistent; a checkpoint beyond the new tail,
    or one whose hash no longer matches, shows it."""

    seq = models.BigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    signature = models.CharField(max_length=64)
    # Which signing key (docs/audit.md, "Keys"); "" for checkpoints signed before key ids.
    key_id = models.CharField(max_length=32, blank=True, default="", db_default="")
    # The anchored checkpoint before this one (None for the first): anchors form a sequence,
    # so a missing anchor shows. Only set when an anchor URL was configured at signing.
    anchored = models.BooleanField(default=False, db_default=False)
    previous_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.seq}"

"""What an import from another MLflow server has brought in, so that a second import writes
only what changed and an interrupted one resumes where it stopped."""

from __future__ import annotations

from django.db import models


class ImportSource(models.Model):
    """One MLflow server imported from, named by its tracking URI without credentials."""

    server = models.CharField(max_length=1000, unique=True)
    # The selection (--experiments, --models) of the last import, which --resume repeats.
    options = models.JSONField(default=dict)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.server


class ImportedObject(models.Model):
    """One source object and what it became. Written in the transaction that writes the
    object (files: right after the store holds them), so what is mapped is there."""

    class Kind(models.TextChoices):
        EXPERIMENT = "experiment"
        RUN = "run"
        LOGGED_MODEL = "logged_model"
        ARTIFACT = "artifact"
        REGISTERED_MODEL = "registered_model"
        MODEL_VERSION = "model_version"
        USER = "user"

    source = models.ForeignKey(ImportSource, on_delete=models.CASCADE, related_name="imported")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The id at the source: experiment id, run id, model id, model name, "name/version", or
    # for a file "<run or logged model id>/<path below its artifact root>".
    source_key = models.CharField(max_length=1200)
    # The Custody id it became (experiment ids may differ when the source's id was taken).
    target_key = models.CharField(max_length=1200)
    # sha256 of the source object as read: unchanged means nothing to do.
    fingerprint = models.CharField(max_length=64)
    # Runs: digest of the metric history as read; files: sha256 of the bytes.
    checksum = models.CharField(max_length=64, blank=True)
    # Runs: metric points; files: bytes.
    size = models.BigIntegerField(null=True, blank=True)
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "kind", "source_key"], name="uniq_imported_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.source_key} -> {self.target_key}"

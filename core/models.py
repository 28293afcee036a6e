"""Versions of the per-process caches (see core.process_cache)."""

from __future__ import annotations

from django.db import models


class CacheVersion(models.Model):
    """One row per family of per-process caches (core.process_cache): `access` (identities,
    roles, grants), `resolution` (what a model name, stage or alias resolves to), `throttle`
    (failed sign-ins) and `lifecycle` (artifact owners, kept by triggers in the database).
    The version takes a new random value in the same transaction as any change the family
    depends on, so a process that reads a different value than the one its cache was filled
    under drops that cache."""

    name = models.CharField(primary_key=True, max_length=32)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.version}"

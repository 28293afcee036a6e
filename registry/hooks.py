"""What the registry asks of the layer above it (governance) without importing it: the
apps above register their answers in AppConfig.ready(). The defaults are the server-wide
settings, so the registry works on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings


def _default_archive_grace(model: Any) -> int:
    return settings.CUSTODY_ARCHIVE_GRACE_SECONDS


def _allow_registration(model: Any, run_id: str) -> None:
    return None


def _allow_alias(model: Any, alias: str, version: Any) -> None:
    return None


def _ignore_stage_change(version: Any, from_stage: str) -> None:
    return None


archive_grace_seconds: Callable[[Any], int] = _default_archive_grace
# Raises an ApplicationError when `model`'s rules refuse pointing `alias` at `version`.
check_alias: Callable[[Any, str, Any], None] = _allow_alias
# Raises an ApplicationError when `model`'s rules refuse a version from `run_id`.
check_registration: Callable[[Any, str], None] = _allow_registration
# Called in the transaction of every stage change and version deletion, after the change,
# with the registered model's row locked.
stage_changed: Callable[[Any, str], None] = _ignore_stage_change


def register(
    *,
    archive_grace: Callable[[Any], int] | None = None,
    registration: Callable[[Any, str], None] | None = None,
    alias: Callable[[Any, str, Any], None] | None = None,
    stage_change: Callable[[Any, str], None] | None = None,
) -> None:
    global archive_grace_seconds, check_registration, check_alias, stage_changed
    if stage_change is not None:
        stage_changed = stage_change
    if alias is not None:
        check_alias = alias
    if archive_grace is not None:
        archive_grace_seconds = archive_grace
    if registration is not None:
        check_registration = registration

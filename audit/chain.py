"""The canonical encoding and hash of an audit event (documented in docs/audit.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

# The fields the hash covers, in the order they appear in exports.
HASHED_FIELDS = (
    "seq",
    "created_at",
    "actor_user_id",
    "actor_username",
    "auth_method",
    "token_id",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "object_name",
    "model_name",
    "model_version",
    "before",
    "after",
    "reason",
    "request_id",
    "client_ip",
    "user_agent",
    "prev_hash",
)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(content: dict[str, Any]) -> bytes:
    return json.dumps(
        {key: content[key] for key in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def event_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content)).hexdigest()

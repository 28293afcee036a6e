"""Recomputing the chain: for the live table, or for an exported file alone.

A contiguous range (the whole table, or an unfiltered export) is checked link by link: each
event's hash must recompute from its content, each prev_hash must equal the previous event's
hash, and sequence numbers must have no gaps. A filtered export (one model, one actor) has
gaps by design; each event's hash still recomputes, so an edited field shows, and its
sequence numbers must still increase. Signed checkpoints catch a truncated tail."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from audit.chain import HASHED_FIELDS, event_hash
from audit.models import GENESIS_HASH


def signing_key() -> bytes:
    key = getattr(settings, "CUSTODY_AUDIT_SIGNING_KEY", "") or settings.SECRET_KEY
    return hashlib.sha256(b"custody-audit-checkpoint:" + key.encode()).digest()


def sign_checkpoint(seq: int, digest: str) -> str:
    return hmac.new(signing_key(), f"{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


@dataclass
class VerifyResult:
    ok: bool = True
    checked: int = 0
    last_seq: int | None = None
    first_broken_seq: int | None = None
    reason: str = ""
    checkpoints_checked: int = 0
    warnings: list[str] = field(default_factory=list)

    def fail(self, seq: int | None, reason: str) -> VerifyResult:
        if self.ok:
            self.ok = False
            self.first_broken_seq = seq
            self.reason = reason
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "last_seq": self.last_seq,
            "first_broken_seq": self.first_broken_seq,
            "reason": self.reason,
            "checkpoints_checked": self.checkpoints_checked,
            "warnings": self.warnings,
        }


def verify_events(
    events: Iterable[dict[str, Any]],
    *,
    contiguous: bool,
    checkpoints: Iterable[dict[str, Any]] = (),
    head: tuple[int, str] | None = None,
) -> VerifyResult:
    """`events` are dicts with the hashed fields plus `hash`, in sequence order. `head` is the
    live chain head (last seq, last hash), read before the events: the chain must reach it,
    and the event at its seq must have its hash (events appended meanwhile come after it)."""
    result = VerifyResult()
    previous_hash: str | None = None
    previous_seq: int | None = None
    seen: dict[int, str] = {}
    wanted = {int(c["seq"]): c for c in checkpoints}
    for event in events:
        seq = int(event["seq"])
        result.checked += 1
        missing = [f for f in HASHED_FIELDS if f not in event]
        if missing:
            return result.fail(seq, f"event #{seq} lacks the fields {missing}")
        if event_hash(event) != event["hash"]:
            return result.fail(seq, f"event #{seq}: its content does not match its hash")
        if previous_seq is not None and seq <= previous_seq:
            return result.fail(seq, f"event #{seq} comes after #{previous_seq}: out of order")
        if contiguous:
            if previous_seq is None:
                if seq == 1 and event["prev_hash"] != GENESIS_HASH:
                    return result.fail(seq, "the first event does not start the chain")
            else:
                if seq != previous_seq + 1:
                    return result.fail(seq, f"events #{previous_seq + 1}..#{seq - 1} are missing")
                if event["prev_hash"] != previous_hash:
                    return result.fail(
                        seq, f"event #{seq} does not link to event #{previous_seq} (fork)"
                    )
        if seq in wanted:
            seen[seq] = event["hash"]
        if head is not None and seq == head[0] and event["hash"] != head[1]:
            return result.fail(seq, f"event #{seq} differs from the chain head's hash")
        previous_hash, previous_seq = event["hash"], seq
        result.last_seq = seq
    if contiguous and result.last_seq is None and wanted:
        return result.fail(1, "signed checkpoints exist but the chain is empty")
    for seq, checkpoint in sorted(wanted.items()):
        if not hmac.compare_digest(
            sign_checkpoint(seq, checkpoint["hash"]), checkpoint["signature"]
        ):
            return result.fail(seq, f"checkpoint #{seq} has an invalid signature")
        result.checkpoints_checked += 1
        if contiguous and result.last_seq is not None and seq > result.last_seq:
            return result.fail(
                result.last_seq + 1,
                f"a signed checkpoint records event #{seq}, but the chain ends at "
                f"#{result.last_seq}: events were removed from the tail",
            )
        if seq in seen and seen[seq] != checkpoint["hash"]:
            return result.fail(seq, f"event #{seq} differs from its signed checkpoint")
    if head is not None and head[0] > (result.last_seq or 0):
        return result.fail(
            (result.last_seq or 0) + 1,
            f"the chain head records event #{head[0]}, but the chain ends at "
            f"#{result.last_seq or 0}: events were removed from the tail",
        )
    return result

"""Recomputing the chain: for the live table, or for an exported file alone.

A contiguous range (the whole table, or an unfiltered export) is checked link by link: each
event's hash must recompute from its content, each prev_hash must equal the previous event's
hash, and sequence numbers must have no gaps. A filtered export (one model, one actor) has
gaps by design; each event's hash still recomputes, so an edited field shows, and its
sequence numbers must still increase. Signed checkpoints catch a truncated tail."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from audit.chain import HASHED_FIELDS, event_hash
from audit.models import GENESIS_HASH


def _derived(secret: str) -> bytes:
    return hashlib.sha256(b"custody-audit-checkpoint:" + secret.encode()).digest()


def _key_id(derived: bytes) -> str:
    return hashlib.sha256(b"custody-audit-key-id:" + derived).hexdigest()[:16]


def _current_secret() -> str:
    return getattr(settings, "CUSTODY_AUDIT_SIGNING_KEY", "") or settings.SECRET_KEY


def signing_key() -> bytes:
    return _derived(_current_secret())


def current_key_id() -> str:
    return _key_id(signing_key())


def keyring() -> dict[str, bytes]:
    """Every key that verifies, by key id; the current one first."""
    keys = {current_key_id(): signing_key()}
    for secret in getattr(settings, "CUSTODY_AUDIT_RETIRED_SIGNING_KEYS", []) or []:
        derived = _derived(secret)
        keys.setdefault(_key_id(derived), derived)
    return keys


def _hmac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(message: bytes, signature: Any, key_id: Any = "") -> bool:
    """Whether one of the known keys made `signature`: the one named by `key_id`, or any
    of them for what was signed before key ids."""
    if not isinstance(signature, str):
        return False
    keys = keyring()
    candidates = [keys[key_id]] if key_id and key_id in keys else ([] if key_id else keys.values())
    return any(hmac.compare_digest(_hmac(key, message), signature) for key in candidates)


def checkpoint_message(seq: int, digest: str) -> bytes:
    return f"{seq}:{digest}".encode()


def sign_checkpoint(seq: int, digest: str) -> str:
    return _hmac(signing_key(), checkpoint_message(seq, digest))


def checkpoint_signature_ok(checkpoint: dict[str, Any]) -> bool:
    return signature_matches(
        checkpoint_message(int(checkpoint["seq"]), str(checkpoint["hash"])),
        checkpoint.get("signature"),
        checkpoint.get("key_id", ""),
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _manifest_message(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return b"custody-manifest:" + canonical_json(body).encode("utf-8")


def sign_manifest(manifest: dict[str, Any]) -> str:
    """HMAC-SHA256 with the checkpoints' key over "custody-manifest:" and the manifest's
    canonical JSON without its signature (a checkpoint's "<seq>:<hash>" cannot collide)."""
    return _hmac(signing_key(), _manifest_message(manifest))


class RowTally:
    """What a manifest states about an export's rows, counted as they stream past (constant
    memory): how many, the first and last seq, and SHA-256 over their hashes in order (each
    hash's hex digits followed by a newline)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self._digest = hashlib.sha256()

    def add(self, row: dict[str, Any]) -> None:
        # A malformed row fails verification on its own; the tally only has to not crash.
        try:
            seq = int(row.get("seq"))
        except (TypeError, ValueError):
            seq = None
        self.count += 1
        if self.count == 1:
            self.first_seq = seq
        self.last_seq = seq
        self._digest.update(f"{row.get('hash')}\n".encode("utf-8", "replace"))

    def counted(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            self.add(row)
            yield row

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()


def manifest_for(
    tally: RowTally,
    *,
    fmt: str,
    filters: dict[str, Any],
    contiguous: bool,
    header: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        **(context or {}),
        "format": fmt,
        "filters": filters,
        "contiguous": contiguous,
        "count": tally.count,
        "first_seq": tally.first_seq,
        "last_seq": tally.last_seq,
        "digest": tally.digest,
        "key_id": current_key_id(),
    }
    if header is not None:
        manifest["header_sha256"] = hashlib.sha256(
            canonical_json(header).encode("utf-8")
        ).hexdigest()
    manifest["signature"] = sign_manifest(manifest)
    return manifest


def check_manifest(
    result: VerifyResult,
    manifest: dict[str, Any],
    tally: RowTally,
    *,
    header: dict[str, Any] | None = None,
) -> VerifyResult:
    """After the rows verified one by one: the file holds exactly the rows the server
    signed, in its order (a deleted, added, reordered or re-hashed row shows here)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("signature"), str):
        return result.fail(None, "the manifest is malformed")
    if not signature_matches(
        _manifest_message(manifest), manifest["signature"], manifest.get("key_id", "")
    ):
        return result.fail(
            None, "the manifest's signature is invalid: it was edited or not signed by this server"
        )
    if header is not None:
        expected = hashlib.sha256(canonical_json(header).encode("utf-8")).hexdigest()
        if manifest.get("header_sha256") != expected:
            return result.fail(None, "the header differs from the one the manifest signed")
    if manifest.get("count") != tally.count:
        return result.fail(
            tally.last_seq,
            f"the manifest lists {manifest.get('count')} events but the file has "
            f"{tally.count}: rows were removed or added",
        )
    if (manifest.get("first_seq"), manifest.get("last_seq")) != (tally.first_seq, tally.last_seq):
        return result.fail(
            tally.first_seq,
            f"the manifest covers events #{manifest.get('first_seq')}..#{manifest.get('last_seq')} "
            f"but the file has #{tally.first_seq}..#{tally.last_seq}",
        )
    if manifest.get("digest") != tally.digest:
        return result.fail(
            None,
            "the events differ from those the manifest signed: a row was edited (and "
            "re-hashed), replaced or reordered",
        )
    result.manifest = "checked"
    return result


@dataclass
class VerifyResult:
    ok: bool = True
    checked: int = 0
    last_seq: int | None = None
    first_broken_seq: int | None = None
    reason: str = ""
    checkpoints_checked: int = 0
    manifest: str | None = None  # "checked" or "absent", for a file
    warnings: list[str] = field(default_factory=list)
    anchors_checked: int = 0
    # {"url", "newest": {"seq", "created_at", "age_seconds"} or None}; None when not checked
    anchors: dict[str, Any] | None = None

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
            "anchors_checked": self.anchors_checked,
            "anchors": self.anchors,
            "manifest": self.manifest,
            "warnings": self.warnings,
        }


def _missing_tail(last_seq: int | None, seq: int, what: str) -> str:
    end = last_seq or 0
    first = end + 1
    missing = f"event #{seq} is missing" if first == seq else f"events #{first}..#{seq} are missing"
    return (
        f"{missing}: {what} records event #{seq}, but the chain ends at #{end}: events were "
        "removed from the tail"
    )


def verify_events(
    events: Iterable[dict[str, Any]],
    *,
    contiguous: bool,
    checkpoints: Iterable[dict[str, Any]] = (),
    head: tuple[int, str] | None = None,
    anchors: Iterable[dict[str, Any]] = (),
    all_checkpoints_present: bool = False,
) -> VerifyResult:
    """`events` are dicts with the hashed fields plus `hash`, in sequence order. `head` is the
    chain head (last seq, last hash), read before the events: the chain must reach it, and
    the event at its seq must have its hash (events appended meanwhile come after it).
    `anchors` are the published checkpoints that apply to these events (audit.anchors):
    the chain must reach each one and have its hash there. With `all_checkpoints_present`
    (the live table), every anchored checkpoint must also still be among `checkpoints`."""
    result = VerifyResult()
    previous_hash: str | None = None
    previous_seq: int | None = None
    seen: dict[int, str] = {}
    wanted = {int(c["seq"]): c for c in checkpoints}
    anchored = {int(a["seq"]): a for a in anchors}
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
        if seq in wanted or seq in anchored:
            seen[seq] = event["hash"]
        if head is not None and seq == head[0] and event["hash"] != head[1]:
            return result.fail(seq, f"event #{seq} differs from the chain head's hash")
        previous_hash, previous_seq = event["hash"], seq
        result.last_seq = seq
    if contiguous and result.last_seq is None and wanted:
        seq = max(wanted)
        return result.fail(1, _missing_tail(None, seq, f"signed checkpoint #{seq}"))
    for seq, checkpoint in sorted(wanted.items()):
        if not checkpoint_signature_ok(checkpoint):
            return result.fail(seq, f"checkpoint #{seq} has an invalid signature")
        result.checkpoints_checked += 1
        if contiguous and result.last_seq is not None and seq > result.last_seq:
            return result.fail(
                result.last_seq + 1,
                _missing_tail(result.last_seq, seq, f"signed checkpoint #{seq}"),
            )
        if seq in seen and seen[seq] != checkpoint["hash"]:
            return result.fail(seq, f"event #{seq} differs from its signed checkpoint")
    for seq, anchor in sorted(anchored.items()):
        if not checkpoint_signature_ok(anchor):
            return result.fail(seq, f"the anchored checkpoint #{seq} has an invalid signature")
        result.anchors_checked += 1
        what = f"the anchored checkpoint #{seq} (signed {anchor.get('created_at')})"
        if contiguous and seq > (result.last_seq or 0):
            return result.fail(
                (result.last_seq or 0) + 1, _missing_tail(result.last_seq, seq, what)
            )
        if seq in seen and seen[seq] != anchor["hash"]:
            return result.fail(seq, f"event #{seq} differs from {what}: it was rewritten")
        if all_checkpoints_present and seq not in wanted:
            return result.fail(
                seq,
                f"checkpoint #{seq} is missing from the database, but {what} records it: "
                "checkpoints were deleted",
            )
        if seq in wanted and wanted[seq]["hash"] != anchor["hash"]:
            return result.fail(seq, f"checkpoint #{seq} differs from {what}")
    if head is not None and head[0] > (result.last_seq or 0):
        return result.fail(
            (result.last_seq or 0) + 1,
            _missing_tail(result.last_seq, head[0], "the chain head"),
        )
    return result

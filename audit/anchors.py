"""External anchors: each signed checkpoint published, write-once, outside the database.

An insider with the database owner's rights can delete the newest events together with the
checkpoints that cover them and rewind the chain head; what was published to the anchor
store (CUSTODY_AUDIT_ANCHOR_URL: `file:///path` or `s3://bucket/prefix`) still says how far
the chain had reached. Each anchor names the anchored checkpoint before it, so a missing
anchor shows too (docs/audit.md, "Anchors")."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.utils import timezone

from audit.chain import format_time
from audit.models import AuditCheckpoint
from audit.verify import _hmac, canonical_json, signature_matches, signing_key

PUBLISH_TASK = "audit.publish_anchor"
_NAME_PREFIX = "checkpoint-"
_NAME_SUFFIX = ".json"


class AnchorError(Exception):
    """The anchor store cannot be read or written, or holds something else under a name."""


def configured_url() -> str:
    return getattr(settings, "CUSTODY_AUDIT_ANCHOR_URL", "") or ""


def object_name(seq: int) -> str:
    """Derived from the checkpoint alone, so publishing twice writes the same object."""
    return f"{_NAME_PREFIX}{seq:020d}{_NAME_SUFFIX}"


def _anchor_message(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "anchor_signature"}
    return b"custody-anchor:" + canonical_json(body).encode("utf-8")


def anchor_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """What is published for a checkpoint: the checkpoint (with its own signature, which
    covers seq and hash) and the anchored checkpoint before it, all signed together."""
    document = {
        "custody_audit_anchor": 1,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "created_at": format_time(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
        "previous_seq": checkpoint.previous_seq,
    }
    document["anchor_signature"] = _hmac(signing_key(), _anchor_message(document))
    return document


def anchor_bytes(checkpoint: AuditCheckpoint) -> bytes:
    return (json.dumps(anchor_document(checkpoint), sort_keys=True) + "\n").encode("utf-8")


class FileAnchorStore:
    """An append-only directory (ideally on another volume or host): each anchor is created
    exclusively (O_EXCL), synced, and made read-only."""

    def __init__(self, path: str) -> None:
        self.root = Path(path)

    def describe(self) -> str:
        return f"file://{self.root}"

    def put_once(self, name: str, data: bytes) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            return _same_or_conflict(self, name, self.get(name), data)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _is_anchor_name(p.name))

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


class S3AnchorStore:
    """Objects `<prefix>/checkpoint-<seq>.json`, written only if absent (If-None-Match: *),
    with S3 Object Lock retention when CUSTODY_AUDIT_ANCHOR_RETENTION_DAYS is set (the
    bucket must have Object Lock enabled)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._listed: dict[str, str] | None = None
        endpoint = getattr(settings, "CUSTODY_AUDIT_ANCHOR_S3_ENDPOINT_URL", "") or getattr(
            settings, "CUSTODY_S3_ENDPOINT_URL", ""
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=getattr(settings, "CUSTODY_S3_REGION", None),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def put_once(self, name: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {}
        days = int(getattr(settings, "CUSTODY_AUDIT_ANCHOR_RETENTION_DAYS", 0) or 0)
        if days > 0:
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = timezone.now() + timedelta(days=days)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(name),
                Body=data,
                ContentType="application/json",
                IfNoneMatch="*",
                **extra,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return _same_or_conflict(self, name, self.get(name), data)
            raise AnchorError(f"cannot write {self.describe()}/{name}: {code or exc}") from exc
        return True

    def _versions(self) -> dict[str, str]:
        """Each anchor's first version, by name. In a versioned bucket (Object Lock needs
        one) an overwrite adds a version and a delete adds a marker, while the first version,
        under retention, stays: that one is the anchor."""
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = f"{self.prefix}/" if self.prefix else ""
        # S3 lists a key's versions newest first: the last one listed is the first written
        # (LastModified has whole seconds only, so it cannot order them).
        first: dict[str, str] = {}
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Versions", []):
                    name = item["Key"][len(prefix) :]
                    if not _is_anchor_name(name):
                        continue
                    first[name] = item.get("VersionId") or ""
        except (ClientError, BotoCoreError) as exc:
            raise AnchorError(f"cannot list {self.describe()}: {exc}") from exc
        return first

    def names(self) -> list[str]:
        self._listed = self._versions()  # get() reads the versions this listing found
        return sorted(self._listed)

    def get(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        version = (self._listed or {}).get(name, "")
        extra = {"VersionId": version} if version and version != "null" else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name), **extra)[
                "Body"
            ].read()
        except (ClientError, BotoCoreError) as exc:
            raise AnchorError(f"cannot read {self.describe()}/{name}: {exc}") from exc


def _is_anchor_name(name: str) -> bool:
    return name.startswith(_NAME_PREFIX) and name.endswith(_NAME_SUFFIX)


def _same_or_conflict(store, name: str, existing: bytes, data: bytes) -> bool:
    if existing == data:
        return False  # published before: nothing to do
    raise AnchorError(
        f"{store.describe()}/{name} exists with other content; anchors are never overwritten"
    )


def store_for(url: str) -> FileAnchorStore | S3AnchorStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise AnchorError(f"a file anchor URL names a local path (file:///path), got {url!r}")
        return FileAnchorStore(unquote(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise AnchorError(f"an S3 anchor URL names a bucket (s3://bucket/prefix), got {url!r}")
        return S3AnchorStore(parts.netloc, unquote(parts.path))
    raise AnchorError(f"an anchor URL is file:///path or s3://bucket/prefix, got {url!r}")


def enqueue_publication(checkpoint: AuditCheckpoint) -> None:
    """In the transaction that writes the checkpoint: publish it once that commits."""
    from outbox import services as outbox

    outbox.enqueue(
        PUBLISH_TASK, dedupe_key=f"audit-anchor:{checkpoint.seq}", checkpoint_seq=checkpoint.seq
    )


def publish(checkpoint: AuditCheckpoint, url: str | None = None) -> bool:
    """Write the checkpoint's anchor unless it is there already (True when written)."""
    url = url or configured_url()
    if not url:
        raise AnchorError("no anchor store is configured (CUSTODY_AUDIT_ANCHOR_URL)")
    return store_for(url).put_once(object_name(checkpoint.seq), anchor_bytes(checkpoint))


@dataclass
class Anchors:
    """What an anchor store holds, read and checked for verification."""

    url: str
    documents: list[dict[str, Any]]  # signed, in seq order
    problem: str = ""  # the first bad or missing anchor, if any
    problem_seq: int | None = None

    @property
    def newest(self) -> dict[str, Any] | None:
        return self.documents[-1] if self.documents else None

    def newest_summary(self, now: datetime | None = None) -> dict[str, Any] | None:
        newest = self.newest
        if newest is None:
            return None
        created = datetime.fromisoformat(newest["created_at"].replace("Z", "+00:00"))
        age = ((now or timezone.now()) - created).total_seconds()
        return {"seq": newest["seq"], "created_at": newest["created_at"], "age_seconds": age}


def load(url: str) -> Anchors:
    """Every anchor at `url`, each checked: its signatures, its name, and that it names the
    anchor before it. Raises AnchorError when the store cannot be read."""
    store = store_for(url)
    documents: list[dict[str, Any]] = []
    result = Anchors(url=store.describe(), documents=documents)

    def bad(seq: int | None, reason: str) -> None:
        if not result.problem:
            result.problem, result.problem_seq = reason, seq

    for name in store.names():
        try:
            document = json.loads(store.get(name))
            seq = int(document["seq"])
        except (ValueError, KeyError, TypeError):
            bad(None, f"anchor {name} is not a readable anchor")
            continue
        if name != object_name(seq):
            bad(seq, f"anchor {name} holds checkpoint #{seq}: it was renamed")
            continue
        if not signature_matches(
            _anchor_message(document), document.get("anchor_signature"), document.get("key_id")
        ):
            bad(seq, f"anchor for checkpoint #{seq} has an invalid signature")
            continue
        documents.append(document)
    documents.sort(key=lambda d: int(d["seq"]))
    if documents and documents[0].get("previous_seq") is not None:
        bad(
            int(documents[0]["seq"]),
            f"anchors are missing: checkpoint #{documents[0]['seq']} follows checkpoint "
            f"#{documents[0]['previous_seq']}, whose anchor is absent",
        )
    for previous, document in zip(documents, documents[1:], strict=False):
        if document.get("previous_seq") != previous["seq"]:
            bad(
                int(document["seq"]),
                f"anchors are missing: checkpoint #{document['seq']} follows checkpoint "
                f"#{document.get('previous_seq')}, but the anchor before it is "
                f"#{previous['seq']}",
            )
    return result


def load_or_error(url: str) -> tuple[Anchors | None, str]:
    """(the anchors at `url`, "") or (None, why they cannot be read)."""
    try:
        return load(url), ""
    except (AnchorError, OSError) as exc:
        return None, str(exc)


def report(result, url: str, anchors: Anchors | None, error: str) -> None:
    """Put what the anchors say on a verification result: no store (a warning), a store
    that cannot be read or holds a bad or missing anchor (a failure), the newest anchor."""
    if not url:
        result.warnings.append(
            "no anchor store is configured (CUSTODY_AUDIT_ANCHOR_URL): a tail removed together "
            "with its checkpoints and the chain head would not show"
        )
        return
    if anchors is None:
        result.anchors = {"url": url, "newest": None, "count": 0}
        result.fail(None, f"the anchors cannot be read: {error}")
        return
    result.anchors = {
        "url": anchors.url,
        "newest": anchors.newest_summary(),
        "count": len(anchors.documents),
    }
    if anchors.problem:
        result.fail(anchors.problem_seq, anchors.problem)


def for_export(
    documents: list[dict[str, Any]],
    *,
    exported_at: str,
    filters: dict[str, Any],
    first_seq: int | None,
) -> list[dict[str, Any]]:
    """The anchors an export must agree with: signed before it was taken (and before its
    `until`), and not before its first event when it starts later than event 1."""

    def when(text: str) -> datetime:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    cutoff = when(exported_at)
    if filters.get("until"):
        cutoff = min(cutoff, when(str(filters["until"])))
    starts_later = bool(filters.get("since")) or filters.get("after_seq") not in (None, "")
    if starts_later and first_seq is None:
        return []
    return [
        d
        for d in documents
        if when(d["created_at"]) <= cutoff and (not starts_later or int(d["seq"]) >= first_seq)
    ]


def newest_status(*, look_back: int = 5) -> dict[str, Any] | None:
    """The newest published anchor and its age, for the audit page: the newest anchored
    checkpoints in the database, newest first, until one is found in the store (a read or
    two, however many anchors there are; the full check is verification's). None when no
    store is configured."""
    url = configured_url()
    if not url:
        return None
    try:
        store = store_for(url)
        for checkpoint in AuditCheckpoint.objects.filter(anchored=True).order_by("-seq")[
            :look_back
        ]:
            try:
                document = json.loads(store.get(object_name(checkpoint.seq)))
            except (AnchorError, OSError):
                continue  # not published yet
            summary = Anchors(url=store.describe(), documents=[document]).newest_summary()
            return {"url": store.describe(), "newest": summary, "error": ""}
        return {"url": store.describe(), "newest": None, "error": ""}
    except (AnchorError, OSError, ValueError, KeyError, TypeError) as exc:
        return {"url": url, "newest": None, "error": str(exc)}

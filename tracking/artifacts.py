"""Artifact storage: one path validator and two stores (a local directory, S3) behind one
interface. The server assigns every location; no request can reach outside the root or
prefix (reference/security.md §2.1)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from django.conf import settings

from core.errors import InvalidParameterValue, PayloadTooLarge, ResourceDoesNotExist

MAX_PATH_LENGTH = 1024
MAX_SEGMENTS = 64
MAX_SEGMENT_BYTES = 255
CHUNK = 1024 * 1024
_FORBIDDEN_CHARS = set("\\#?;")
_TEMP_PREFIX = ".custody-upload-"
_IIS_ESCAPE = re.compile(r"%u([0-9a-fA-F]{4})")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _invalid(reason: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid path: {reason}")


def _check_form(form: str) -> None:
    for char in form:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise _invalid(f"control or invisible character U+{ord(char):04X} is not allowed")
        if char in _FORBIDDEN_CHARS:
            raise _invalid(f"the character {char!r} is not allowed in artifact paths")
    if form.startswith("/") or form.lower().startswith("file:"):
        raise _invalid("absolute paths are not allowed")
    for segment in form.split("/"):
        if segment in (".", ".."):
            raise _invalid("'.' and '..' segments are not allowed")
        if _DRIVE.match(segment):
            raise _invalid("drive letters ('C:') are not allowed")


def clean_artifact_path(raw: str, *, allow_empty: bool = False) -> str:
    """The one validator for artifact paths; returns the path to store (as received).

    Every decoded form (percent-decoding repeated until stable, then NFKC) is checked, so
    double-encoded and look-alike traversal is refused; the stored name is never decoded
    beyond what the client sent."""
    if not isinstance(raw, str):
        raise _invalid("expected a string")
    path = raw[:-1] if raw.endswith("/") and len(raw) > 1 else raw
    if path == "":
        if allow_empty:
            return ""
        raise _invalid("a path is required")
    if len(path) > MAX_PATH_LENGTH:
        raise _invalid(f"longer than {MAX_PATH_LENGTH} characters")
    forms, current = [path], path
    for _ in range(5):
        try:
            decoded = unquote(current, errors="strict") if "%" in current else current
            # IIS-style %uXXXX escapes are decoded too, so they cannot hide a traversal.
            decoded = _IIS_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), decoded)
        except UnicodeDecodeError:
            raise _invalid("percent-encoding that is not valid UTF-8") from None
        if decoded == current:
            break
        forms.append(decoded)
        current = decoded
    else:
        raise _invalid("too many levels of percent-encoding")
    forms += [unicodedata.normalize("NFKC", f) for f in list(forms)]
    for form in forms:
        _check_form(form)
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise _invalid(f"more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if segment == "":
            raise _invalid("empty segments ('//') are not allowed")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        if segment != segment.strip() or segment.endswith("."):
            raise _invalid("a segment may not start or end with a space or end with a dot")
    return path


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int | None


class _CappedReader:
    """Reads a request stream, refusing more than `limit` bytes without buffering it."""

    def __init__(self, stream: IO[bytes], limit: int):
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(CHUNK if size is None or size < 0 else size)
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limit:
            raise PayloadTooLarge(
                f"The artifact is larger than this server accepts ({self.limit} bytes)."
            )
        return chunk


class LocalArtifactStore:
    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return str(self.root)

    def _target(self, path: str, *, create_parents: bool = False) -> Path:
        """The filesystem path of `path`, refusing symlinks anywhere below the root."""
        self.root.mkdir(parents=True, exist_ok=True)
        current = self.root
        parts = path.split("/") if path else []
        for i, part in enumerate(parts):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if create_parents and i < len(parts) - 1:
                    current.mkdir(exist_ok=True)
                    mode = os.lstat(current).st_mode
                else:
                    continue
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    raise _invalid("name too long") from None
                raise
            if stat.S_ISLNK(mode):
                raise _invalid("symbolic links are not followed")
        if not current.resolve().is_relative_to(self.root):
            raise _invalid("outside the artifact root")
        return current

    def put(self, path: str, stream: IO[bytes], limit: int) -> int:
        target = self._target(path, create_parents=True)
        if target.is_dir():
            raise _invalid("a directory exists at this path")
        temp = target.parent / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        reader = _CappedReader(stream, limit)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
            # Readers see the old file or the new one, never a partial upload.
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return reader.read_bytes

    def open(self, path: str) -> tuple[Iterator[bytes], int]:
        target = self._target(path)
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ResourceDoesNotExist(f"No such artifact: {path}") from None
        handle = os.fdopen(fd, "rb")
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            handle.close()
            raise ResourceDoesNotExist(f"No such artifact: {path}")

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks(), info.st_size

    def list_dir(self, path: str) -> list[Entry] | None:
        target = self._target(path)
        if not target.is_dir() or target.is_symlink():
            return None
        entries = []
        with os.scandir(target) as it:
            for item in it:
                if item.name.startswith(_TEMP_PREFIX) or item.is_symlink():
                    continue
                is_dir = item.is_dir(follow_symlinks=False)
                size = None if is_dir else item.stat(follow_symlinks=False).st_size
                entries.append(Entry(item.name, is_dir, size))
        return sorted(entries, key=lambda e: e.name)

    def delete(self, path: str) -> None:
        target = self._target(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            raise ResourceDoesNotExist(f"No such artifact: {path}")


class S3ArtifactStore:
    def __init__(self, uri: str):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"CUSTODY_ARTIFACT_ROOT {uri!r} names no bucket")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=settings.CUSTODY_S3_ENDPOINT_URL or None,
            region_name=settings.CUSTODY_S3_REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, path) if p)

    def put(self, path: str, stream: IO[bytes], limit: int) -> int:
        from boto3.s3.transfer import TransferConfig

        reader = _CappedReader(stream, limit)
        self.client.upload_fileobj(
            reader, self.bucket, self._key(path), Config=TransferConfig(use_threads=False)
        )
        return reader.read_bytes

    def open(self, path: str) -> tuple[Iterator[bytes], int]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ResourceDoesNotExist(f"No such artifact: {path}") from None
            raise
        return response["Body"].iter_chunks(CHUNK), int(response["ContentLength"])

    def list_dir(self, path: str) -> list[Entry] | None:
        prefix = self._key(path)
        prefix = f"{prefix}/" if prefix else ""
        entries: dict[str, Entry] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                entries[name] = Entry(name, True, None)
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name:
                    entries[name] = Entry(name, False, int(obj["Size"]))
        return sorted(entries.values(), key=lambda e: e.name) or None

    def delete(self, path: str) -> None:
        key = self._key(path)
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{key}/"
        ):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            keys.append(key)
        except Exception:  # noqa: BLE001 - a missing single object is fine when a tree exists
            pass
        if not keys:
            raise ResourceDoesNotExist(f"No such artifact: {path}")
        # Some S3 servers (SeaweedFS) keep folder entries that outlive their objects;
        # deleting the folder markers, deepest first, makes the tree disappear everywhere.
        folders = {f"{key}/"}
        for k in keys:
            parent = k.rsplit("/", 1)[0]
            while parent.startswith(f"{key}/"):
                folders.add(f"{parent}/")
                parent = parent.rsplit("/", 1)[0]
        keys += sorted(folders, key=len, reverse=True)
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )


ArtifactStore = LocalArtifactStore | S3ArtifactStore


@lru_cache(maxsize=4)
def _store_for(root: str) -> ArtifactStore:
    if root.startswith("s3://"):
        return S3ArtifactStore(root)
    return LocalArtifactStore(root)


def get_artifact_store() -> ArtifactStore:
    return _store_for(settings.CUSTODY_ARTIFACT_ROOT)

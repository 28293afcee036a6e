"""Artifact storage: one path validator and two stores (a local directory, S3) behind one
interface. The server assigns every location; no request can reach outside the root or
prefix (reference/security.md §2.1).

Path rules (`clean_artifact_path`): a path is `/`-separated segments relative to the root.
`.`, `..` and empty segments are *refused*, not canonicalised, so one stored name has exactly
one spelling; the only canonicalisation is that one trailing `/` is dropped (`a/b/` is `a/b`).
The stored name is the string the client sent after the one percent-decoding every HTTP
server does; every further decoding (percent escapes repeated until stable, IIS `%uXXXX`,
NFKC) is only *checked*, so an attacker cannot smuggle a traversal through a later decoder
and a legitimate `a%20b.txt` is stored under exactly that name."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import unquote

from django.conf import settings

from core.errors import (
    ApplicationError,
    InvalidParameterValue,
    PayloadTooLarge,
    ResourceDoesNotExist,
    StorageFull,
    StorageRefused,
    storage_error,
)

MAX_PATH_LENGTH = 1024
MAX_SEGMENTS = 64
MAX_SEGMENT_BYTES = 255
MAX_DECODE_ROUNDS = 5
CHUNK = 1024 * 1024
_FORBIDDEN_CHARS = frozenset("\\#?;")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Our own in-flight upload files; reserved so a client can neither create nor see them.
_TEMP_PREFIX = ".custody-upload-"
_IIS_ESCAPE = re.compile(r"%u([0-9a-fA-F]{4})")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def _invalid(reason: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid path: {reason}")


def _percent_decode(text: str) -> str:
    """One round of %XX decoding, strict UTF-8 (overlong `%c0%ae` is not UTF-8: refused)."""
    if "%" not in text:
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _invalid("percent-encoding that is not valid UTF-8") from None


def _check_form(form: str) -> None:
    # Printable ASCII holds no control or invisible character: the per-character look at
    # Unicode categories is for the rest (it also names the first character refused).
    if not (_PRINTABLE_ASCII.fullmatch(form) and _FORBIDDEN_CHARS.isdisjoint(form)):
        _check_characters(form)
    if form.startswith("/") or form.lower().startswith("file:"):
        raise _invalid("absolute paths are not allowed")
    for segment in form.split("/"):
        if segment in (".", ".."):
            raise _invalid("'.' and '..' segments are not allowed")
        if _DRIVE.match(segment):
            raise _invalid("drive letters ('C:') are not allowed")


def _check_characters(form: str) -> None:
    for char in form:
        if unicodedata.category(char) in _INVISIBLE:
            raise _invalid(f"control or invisible character U+{ord(char):04X} is not allowed")
        if char in _FORBIDDEN_CHARS:
            raise _invalid(f"the character {char!r} is not allowed in artifact paths")


def clean_artifact_path(raw: str, *, allow_empty: bool = False) -> str:
    """The one validator for artifact paths; returns the path to store.

    Every decoded form (percent-decoding repeated until stable, `%uXXXX`, then NFKC of each)
    is checked, so double-encoded and look-alike traversal is refused; the returned name is
    never decoded beyond what the client sent.

    `allow_empty` is for paths naming a directory to list, where MLflow takes "" and "." for
    the root and a "." segment for "this directory": `download_artifacts(run_id, ".")` lists
    `<run>/artifacts/.`, then `<run>/artifacts/./<dir>`. There "." segments are dropped
    before the checks; in paths naming a file they stay refused, and ".." is refused
    everywhere."""
    if not isinstance(raw, str):
        raise _invalid("expected a string")
    path = raw[:-1] if raw.endswith("/") and len(raw) > 1 else raw
    if allow_empty and not path.startswith("/") and "." in path.split("/"):
        path = "/".join(segment for segment in path.split("/") if segment != ".")
    if path == "":
        if allow_empty:
            return ""
        raise _invalid("a path is required")
    if len(path) > MAX_PATH_LENGTH:
        raise _invalid(f"longer than {MAX_PATH_LENGTH} characters")
    forms, current = [path], path
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = _IIS_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), _percent_decode(current))
        if decoded == current:
            break
        forms.append(decoded)
        current = decoded
    else:
        raise _invalid("too many levels of percent-encoding")
    forms += [unicodedata.normalize("NFKC", f) for f in list(forms)]
    for form in dict.fromkeys(forms):  # a form met twice (NFKC of ASCII is itself) once
        _check_form(form)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("not valid Unicode (lone surrogate)") from None
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise _invalid(f"more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if segment == "":
            raise _invalid("empty segments ('//') are not allowed")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        if segment != segment.strip() or segment.endswith("."):
            # Windows strips these when a client downloads, so two names would collide.
            raise _invalid("a segment may not start or end with a space or end with a dot")
        if segment.startswith(_TEMP_PREFIX):
            raise _invalid(f"names starting with {_TEMP_PREFIX!r} are reserved")
    return path


# ---------------------------------------------------------------------------------------------
# The store interface


@dataclass(frozen=True)
class Entry:
    name: str  # the basename, one level below the listed directory
    is_dir: bool
    size: int | None  # None for directories


class ArtifactStore(Protocol):
    """Both backends. Paths are already cleaned (`clean_artifact_path`)."""

    def describe(self) -> str: ...

    def probe(self) -> None:
        """Take a small write and remove it (for /ready): StorageFull or StorageRefused when
        the store cannot take one."""
        ...

    def put(
        self, path: str, stream: IO[bytes], length: int | None = None, *, limit: int | None = None
    ) -> int:
        """Stream `stream` to `path` (replacing a file); returns the byte count. Atomic: a
        failed or aborted upload leaves the old file or nothing, never a partial one.
        `limit` defaults to CUSTODY_MAX_ARTIFACT_BYTES (PayloadTooLarge past it)."""
        ...

    def open(self, path: str) -> tuple[Iterator[bytes], int]:
        """(chunks, size) of a file; ResourceDoesNotExist for a missing file or a directory."""
        ...

    def list_dir(self, path: str) -> list[Entry] | None:
        """One level, sorted by name; None when `path` is a file or missing."""
        ...

    def is_file(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...

    def delete(self, path: str) -> None:
        """Delete a file or a whole tree; ResourceDoesNotExist when there is nothing."""
        ...


def _limit(limit: int | None) -> int:
    return settings.CUSTODY_MAX_ARTIFACT_BYTES if limit is None else limit


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The artifact is larger than this server accepts ({limit} bytes).")


class _CappedReader:
    """Reads a request stream, refusing more than `limit` bytes without buffering it, and
    refusing a body that ends before its announced length (a client that went away): the
    store then discards what it got instead of keeping a truncated file."""

    def __init__(self, stream: IO[bytes], limit: int, length: int | None):
        self.stream, self.limit, self.length, self.read_bytes = stream, limit, length, 0
        if length is not None and length > limit:
            raise _too_large(limit)

    def read(self, size: int | None = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        # Never ask for more than one byte past the cap: an oversized body is refused
        # having read at most limit + 1 bytes.
        chunk = self.stream.read(max(0, min(want, self.limit - self.read_bytes + 1)))
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limit:
            raise _too_large(self.limit)
        if not chunk and self.length is not None and self.read_bytes < self.length:
            raise InvalidParameterValue(
                f"The upload ended after {self.read_bytes} of {self.length} bytes; nothing was "
                "stored."
            )
        return chunk

    def drain(self) -> None:
        """Read and discard the rest of the body (within the cap) before the error answer:
        a client still sending when the server answers and closes sees a broken connection,
        which the MLflow client retries, instead of the answer, which it does not."""
        try:
            while self.read(CHUNK):
                pass
        except (ApplicationError, OSError):
            pass


def _refused_by_storage(reader: _CappedReader, error: ApplicationError) -> ApplicationError:
    reader.drain()
    return error


# ---------------------------------------------------------------------------------------------
# Local directory

# What /ready writes to see that the store takes a write.
_PROBE_BYTES = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalArtifactStore:
    """Every operation walks the path one directory at a time with `openat`-style calls
    (`dir_fd=`) and O_NOFOLLOW, so a symlink anywhere below the root, planted before or
    swapped in during the request, is never followed. The resolved root is the only
    absolute path used."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return str(self.root)

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:  # the first operation on a new root
            self.root.mkdir(parents=True, exist_ok=True)
            return os.open(self.root, _DIR_FLAGS)

    @staticmethod
    def _is_link(name: str, dir_fd: int) -> bool:
        try:
            return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
        except OSError:
            return False

    @contextmanager
    def _walk(self, parts: list[str], *, create: bool) -> Iterator[int | None]:
        """An fd of the directory `parts` names (None when it is missing, or is a file and
        `create` is off); symlinks are refused with 400."""
        fd = self._root_fd()
        try:
            for part in parts:
                try:
                    if create:
                        try:
                            os.mkdir(part, 0o750, dir_fd=fd)
                        except FileExistsError:
                            pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == errno.ENAMETOOLONG:
                        raise _invalid("name too long") from None
                    if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
                    if self._is_link(part, fd):
                        raise _invalid("symbolic links are not followed") from None
                    if create:
                        raise _invalid(f"{part!r} is a file, not a directory") from None
                    yield None
                    return
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _parent(self, path: str, *, create: bool = False) -> Iterator[tuple[int | None, str]]:
        parts = path.split("/")
        with self._walk(parts[:-1], create=create) as fd:
            yield fd, parts[-1]

    @staticmethod
    def _lstat(fd: int, name: str) -> os.stat_result | None:
        try:
            return os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _invalid("name too long") from None
            raise

    def put(
        self, path: str, stream: IO[bytes], length: int | None = None, *, limit: int | None = None
    ) -> int:
        reader = _CappedReader(stream, _limit(limit), length)
        if not path:
            raise _invalid("a file name is required")
        try:
            return self._put(path, reader)
        except OSError as exc:
            # A full disk or quota, a read-only or unwritable root: a 507 the client reads
            # (and does not retry); the temporary file is already gone.
            error = storage_error(exc, f"local directory, {exc.strerror}")
            if error is None:
                raise
            raise _refused_by_storage(reader, error) from exc

    def _put(self, path: str, reader: _CappedReader) -> int:
        with self._parent(path, create=True) as (fd, name):
            assert fd is not None
            info = self._lstat(fd, name)
            if info is not None and stat.S_ISLNK(info.st_mode):
                raise _invalid("symbolic links are not followed")
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise _invalid("a directory exists at this path")
            temp = f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
            try:
                out_fd = os.open(
                    temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640, dir_fd=fd
                )
                with os.fdopen(out_fd, "wb") as out:
                    while chunk := reader.read(CHUNK):
                        out.write(chunk)
                # Readers see the old file or the new one, never a partial upload; replace
                # renames over a planted symlink rather than writing through it.
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(temp, dir_fd=fd)
                except FileNotFoundError:
                    pass
                raise
        return reader.read_bytes

    def probe(self) -> None:
        """Write and remove a small file at the root (for /ready); StorageFull or
        StorageRefused when the store cannot take a write."""
        temp = f"{_TEMP_PREFIX}ready-{uuid.uuid4().hex}"
        try:
            fd = self._root_fd()
            try:
                out_fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=fd)
                try:
                    with os.fdopen(out_fd, "wb") as out:
                        out.write(b"\0" * _PROBE_BYTES)
                finally:
                    try:
                        os.unlink(temp, dir_fd=fd)
                    except FileNotFoundError:
                        pass
            finally:
                os.close(fd)
        except OSError as exc:
            raise (storage_error(exc, "local directory") or exc) from exc

    def open(self, path: str) -> tuple[Iterator[bytes], int]:
        missing = ResourceDoesNotExist(f"No such artifact: {path}")
        if not path:
            raise missing
        with self._parent(path) as (fd, name):
            if fd is None:
                raise missing
            try:
                # O_NONBLOCK: a planted FIFO must not hang the worker; no effect on files.
                file_fd = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _invalid("symbolic links are not followed") from None
                if exc.errno == errno.ENAMETOOLONG:
                    raise _invalid("name too long") from None
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
                    raise missing from None
                raise
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(file_fd)
            raise missing
        handle = os.fdopen(file_fd, "rb")

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks(), info.st_size

    def list_dir(self, path: str) -> list[Entry] | None:
        with self._walk(path.split("/") if path else [], create=False) as fd:
            if fd is None:
                return None
            entries = []
            with os.scandir(fd) as it:
                for item in it:
                    if item.name.startswith(_TEMP_PREFIX) or item.is_symlink():
                        continue
                    is_dir = item.is_dir(follow_symlinks=False)
                    if not is_dir and not item.is_file(follow_symlinks=False):
                        continue  # sockets, FIFOs: nothing a client can download
                    size = None if is_dir else item.stat(follow_symlinks=False).st_size
                    entries.append(Entry(item.name, is_dir, size))
        return sorted(entries, key=lambda e: e.name)

    def _stat(self, path: str) -> os.stat_result | None:
        if not path:
            return os.stat(self.root) if self.root.is_dir() else None
        with self._parent(path) as (fd, name):
            return None if fd is None else self._lstat(fd, name)

    def is_file(self, path: str) -> bool:
        info = self._stat(path)
        return info is not None and stat.S_ISREG(info.st_mode)

    def exists(self, path: str) -> bool:
        info = self._stat(path)
        return info is not None and (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode))

    def delete(self, path: str) -> None:
        missing = ResourceDoesNotExist(f"No such artifact: {path}")
        if not path:
            raise _invalid("the artifact root cannot be deleted")
        with self._parent(path) as (fd, name):
            if fd is None:
                raise missing
            info = self._lstat(fd, name)
            if info is None:
                raise missing
            if stat.S_ISLNK(info.st_mode):
                raise _invalid("symbolic links are not followed")
            if stat.S_ISDIR(info.st_mode):
                # With dir_fd, rmtree works fd-relative and never follows links inside.
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)


# ---------------------------------------------------------------------------------------------
# S3

# Error codes of S3 and S3-compatible servers (AWS, MinIO, SeaweedFS, Ceph) for "no room".
S3_NO_ROOM_CODES = frozenset(
    {
        "QuotaExceeded",
        "ServiceQuotaExceeded",
        "InsufficientStorage",
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
        "StorageFull",
    }
)
# ... and for "this server may not write there".
S3_REFUSED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "NoSuchBucket",
        "InvalidObjectState",
    }
)


class S3ArtifactStore:
    """Keys are `<prefix>/<path>`. Paths are validated, so a key never leaves the prefix
    (S3 does not interpret `..`, and SeaweedFS's filer would: they never get here)."""

    def __init__(self, uri: str, endpoint_url: str | None, region: str | None):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"CUSTODY_ARTIFACT_ROOT {uri!r} names no bucket")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, path) if p)

    def _has_children(self, key: str) -> bool:
        prefix = f"{key}/" if key else ""
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return bool(page.get("KeyCount") or page.get("Contents"))

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def put(
        self, path: str, stream: IO[bytes], length: int | None = None, *, limit: int | None = None
    ) -> int:
        from boto3.s3.transfer import TransferConfig

        reader = _CappedReader(stream, _limit(limit), length)
        if not path:
            raise _invalid("a file name is required")
        key = self._key(path)
        try:
            if self._has_children(key):
                raise _invalid("a directory exists at this path")
            # upload_fileobj holds at most one part (8 MiB) in memory and aborts the multipart
            # upload when the reader raises, so a refused or truncated body stores nothing.
            self.client.upload_fileobj(
                reader, self.bucket, key, Config=TransferConfig(use_threads=False)
            )
        except ApplicationError:
            raise
        except Exception as exc:
            error = self._storage_error(exc)
            if error is None:
                raise
            raise _refused_by_storage(reader, error) from exc
        return reader.read_bytes

    def _storage_error(self, exc: BaseException | None) -> ApplicationError | None:
        """A quota or permission refusal from S3 (directly or wrapped by boto3's transfer
        manager) as a client-readable 507; None for anything else."""
        from botocore.exceptions import ClientError

        while exc is not None and not isinstance(exc, ClientError):
            exc = exc.__cause__ or exc.__context__
        if exc is None:
            return None
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{self.bucket}: {code or status}"
        if code in S3_NO_ROOM_CODES or status == 507:
            return StorageFull(
                f"The artifact store is full ({where}); nothing was stored. Free space or "
                "raise the quota, then upload again."
            )
        if code in S3_REFUSED_CODES or status == 403:
            return StorageRefused(
                f"The artifact store refused the write ({where}); nothing was stored. The "
                "server's storage credentials or bucket policy need an administrator."
            )
        return None

    def probe(self) -> None:
        """Put and delete a small object under the prefix (for /ready)."""
        key = self._key(f"{_TEMP_PREFIX}ready")
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"\0" * _PROBE_BYTES)
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise (self._storage_error(exc) or exc) from exc

    def open(self, path: str) -> tuple[Iterator[bytes], int]:
        from botocore.exceptions import ClientError

        missing = ResourceDoesNotExist(f"No such artifact: {path}")
        if not path:
            raise missing
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise missing from None
            raise
        if response.get("ContentType") == "application/x-directory":
            # SeaweedFS can answer GET on a "folder" with an empty directory object.
            response["Body"].close()
            raise missing
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
                if name:
                    entries[name] = Entry(name, True, None)
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name and "/" not in name and name not in entries:
                    entries[name] = Entry(name, False, int(obj["Size"]))
        return sorted(entries.values(), key=lambda e: e.name) or None

    def is_file(self, path: str) -> bool:
        if not path:
            return False
        head = self._head(self._key(path))
        return head is not None and head.get("ContentType") != "application/x-directory"

    def exists(self, path: str) -> bool:
        return self.is_file(path) or self._has_children(self._key(path))

    def delete(self, path: str) -> None:
        if not path:
            raise _invalid("the artifact root cannot be deleted")
        key = self._key(path)
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{key}/"
        ):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        if self._head(key) is not None:
            keys.append(key)
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
        keys += sorted(folders - set(keys), key=len, reverse=True)
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )


# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _store_for(root: str, endpoint_url: str | None, region: str | None) -> ArtifactStore:
    if root.startswith("s3://"):
        return S3ArtifactStore(root, endpoint_url, region)
    return LocalArtifactStore(root)


def get_artifact_store() -> ArtifactStore:
    """The store for the current settings; cached per (root, endpoint, region), so tests that
    override settings get the matching store. `get_artifact_store.cache_clear()` resets it."""
    return _store_for(
        settings.CUSTODY_ARTIFACT_ROOT,
        settings.CUSTODY_S3_ENDPOINT_URL,
        settings.CUSTODY_S3_REGION,
    )


get_artifact_store.cache_clear = _store_for.cache_clear  # type: ignore[attr-defined]


def check_writable() -> None:
    """The /ready check of the artifact store (core.readiness)."""
    get_artifact_store().probe()

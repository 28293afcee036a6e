"""Test settings: the base settings with fast hashing and plain static files.

DATABASE_URL, CUSTODY_ARTIFACT_ROOT and REDIS_URL still come from the environment, so the
same suite runs on SQLite and on PostgreSQL."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("CUSTODY_DATA_DIR", tempfile.mkdtemp(prefix="custody-test-data-"))

from config.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "core.postgresql":  # noqa: F405
    # Lets the test runner TRUNCATE the audit table between tests (see the audit migration).
    DATABASES["default"]["OPTIONS"]["options"] += " -c custody.allow_audit_truncate=on"  # noqa: F405

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise warns when it is missing)

# Every request reads the cache versions (production polls at most every 0.5 s): query counts
# in tests then depend on what a request does, not on how long ago another one polled.
CUSTODY_CACHE_POLL_SECONDS = 0

# In-process tests run inside a transaction that never commits, so events that are chained
# after their commit (PostgreSQL's default, docs/audit.md "Concurrency") would stay unchained
# and unordered for tests that read them back. They chain as they are recorded here; the
# tests of the audit trail (tests/audit) and the live server (base settings, real commits)
# run the deferred chaining.
CUSTODY_AUDIT_CHAINING = os.environ.get("CUSTODY_TEST_AUDIT_CHAINING", "inline")

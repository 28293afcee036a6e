"""Custody settings. Everything that differs between machines comes from the environment;
see README.md and .env.example for the variables."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_optional_int, env_str
from config.private_files import ensure_private_dir, ensure_private_sqlite, sqlite_file

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("CUSTODY_DATA_DIR", str(BASE_DIR / "data")))
# Private to the account running Custody (0700). The default ./data is also tightened if an
# older version created it open; a CUSTODY_DATA_DIR that exists is the operator's to set.
ensure_private_dir(DATA_DIR, tighten=not env_str("CUSTODY_DATA_DIR"))

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
if not SECRET_KEY:
    # The embedded default generates and keeps a key under the data directory, so that
    # `make run` works on a fresh machine without inventing a shared, guessable default.
    from config.secret_key import load_or_create_secret_key

    SECRET_KEY = load_or_create_secret_key(DATA_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
PORT = env_int("PORT", 5000)

INSTALLED_APPS = [
    "accounts.admin_config.CustodyAdminConfig",  # django.contrib.admin, sign-in throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    "django_celery_beat",
    "core",
    "audit",
    "outbox",
    "accounts",
    "tracking",
    "registry",
    "governance",
    "lineage",
    "webhooks",
    "mlflow_import",
    "web",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/experiments/"
LOGOUT_REDIRECT_URL = "/login/"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestContextMiddleware",
    "core.observability.RequestObservationMiddleware",
    "core.middleware.RequestLimitsMiddleware",
    "core.middleware.RejectUnstorableInputMiddleware",
    "accounts.middleware.CookieSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "accounts.middleware.CookieAuthenticationMiddleware",
    "accounts.middleware.ApiAuthenticationMiddleware",
    # Records each refusal once the view has returned (after its transactions rolled back).
    "core.refusals.RefusalMiddleware",
    "accounts.middleware.CookieMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# MLflow routes have no trailing slash; never redirect a client's POST to a slash variant.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# The UI's and the admin's messages live in the session they already have. The default
# (a signed cookie, falling back to the session) built a cookie signer on every request,
# API calls included: 1.3% of a 64 KiB upload's server time (py-spy, 2026-12-07).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'custody.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE makes writers queue for the
    # lock at BEGIN instead of failing mid-transaction with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    # A pathological search must not hold a worker forever.
    statement_timeout_ms = env_int("CUSTODY_STATEMENT_TIMEOUT_MS", 30000)
    DATABASES["default"]["OPTIONS"]["options"] = f"-c statement_timeout={statement_timeout_ms}"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, checking a persistent connection only after it sat idle a second.
        DATABASES["default"]["ENGINE"] = "core.postgresql"

if (SQLITE_FILE := sqlite_file(DATABASES["default"])) is not None:
    ensure_private_sqlite(SQLITE_FILE)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The container image collects the static files at build time, outside the data volume.
STATIC_ROOT = Path(env_str("CUSTODY_STATIC_ROOT") or DATA_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Artifact store: a local directory by default, or s3://bucket/prefix.
CUSTODY_ARTIFACT_ROOT = env_str("CUSTODY_ARTIFACT_ROOT", str(DATA_DIR / "artifacts"))
if not CUSTODY_ARTIFACT_ROOT.startswith("s3://"):
    ensure_private_dir(Path(CUSTODY_ARTIFACT_ROOT))
CUSTODY_S3_ENDPOINT_URL = env_str("CUSTODY_S3_ENDPOINT_URL") or env_str("AWS_ENDPOINT_URL")
CUSTODY_S3_REGION = env_str("AWS_DEFAULT_REGION", "us-east-1")
# Largest single artifact upload accepted through the proxy, in bytes.
CUSTODY_MAX_ARTIFACT_BYTES = env_int("CUSTODY_MAX_ARTIFACT_BYTES", 5 * 1024**3)
# Largest JSON request body for the MLflow API (log-batch of 1000 metrics is ~150 KB).
CUSTODY_MAX_JSON_BYTES = env_int("CUSTODY_MAX_JSON_BYTES", 20 * 1024**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = CUSTODY_MAX_JSON_BYTES

# Celery: without REDIS_URL, tasks run in-process at commit (the embedded default).
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = None
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
# Nothing reads task results; not asking for them keeps the result backend (and its Redis
# subscription) out of the request path.
CELERY_TASK_IGNORE_RESULT = True
# Failures (docs/operations.md, "Failures and recovery"). Every task is idempotent, so a
# message is acknowledged only once its task has finished and a worker that dies mid-task
# gets it redelivered; one message prefetched per process keeps the rest with Redis.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker that loses the broker stops its running acks_late tasks, whose messages will be
# redelivered, instead of finishing them and then failing to acknowledge.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for Redis however long it is gone
# The longest task (an audit export) may run CELERY_TASK_TIME_LIMIT seconds; other tasks set
# shorter limits of their own. Redis redelivers an unacknowledged message after the
# visibility timeout, so it must exceed the longest task or long tasks would run twice.
CELERY_TASK_TIME_LIMIT = env_int("CUSTODY_TASK_TIME_LIMIT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 60,
    # Sweep for abandoned messages every 10 s (kombu's default scans every 100 s).
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    # A broker that is down answers within a second or two instead of hanging a request.
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "health_check_interval": 10,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_REDIS_SOCKET_TIMEOUT = 10
# Periodic work: the one schedule, CELERY_BEAT_SCHEDULE below, run by Celery beat when there is
# a broker (`celery -A config beat`), and without one (the embedded default) by the web
# processes themselves (outbox/inprocess.py): every process runs the outbox relay every
# CUSTODY_INPROCESS_RELAY_SECONDS (0: off), and one of them the rest of the schedule
# (CUSTODY_INPROCESS_PERIODIC). docs/operations.md, "Periodic tasks", lists the entries.
CUSTODY_INPROCESS_RELAY_SECONDS = env_int("CUSTODY_INPROCESS_RELAY_SECONDS", 0 if REDIS_URL else 5)
CUSTODY_INPROCESS_PERIODIC = env_bool("CUSTODY_INPROCESS_PERIODIC", not REDIS_URL)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The relay's and the reconciler's messages expire rather than pile up while no worker runs
# (expire_seconds for django-celery-beat's DatabaseScheduler, expires for Celery's own
# scheduler). To add periodic work, add an entry here; both runners pick it up.
CELERY_BEAT_SCHEDULE: dict = {
    "outbox-relay": {
        "task": "outbox.relay",
        "schedule": env_int("CUSTODY_OUTBOX_RELAY_SECONDS", 5),
        "options": {"expires": 30, "expire_seconds": 30},
    },
    "audit-checkpoint": {
        "task": "audit.checkpoint",
        "schedule": env_int("CUSTODY_CHECKPOINT_SECONDS", 300),
    },
    "audit-chain-pending": {
        "task": "audit.chain_pending",
        "schedule": 60.0,
        "options": {"expires": 60, "expire_seconds": 60},
    },
    "registry-reconcile-superseded": {
        "task": "registry.reconcile_superseded_versions",
        "schedule": env_int("CUSTODY_RECONCILE_SECONDS", 30),
        "options": {"expires": 60, "expire_seconds": 60},
    },
    "notifications-review-reminders": {
        "task": "webhooks.send_review_reminders",
        "schedule": 600.0,
        "options": {"expires": 300, "expire_seconds": 300},
    },
}
# After a promotion to Production, Staging versions older than it are archived once this many
# seconds have passed (time for a canary on the old version).
CUSTODY_ARCHIVE_GRACE_SECONDS = env_int("CUSTODY_ARCHIVE_GRACE_SECONDS", 0)
# The promotion policy every registered model starts with (each model may then change its
# own through /api/v1/models/<name>/policy: admins freely, the model's managers only stricter).
CUSTODY_DEFAULT_POLICY = {
    "required_tags": env_list(
        "CUSTODY_POLICY_REQUIRED_TAGS", ["dataset_version", "git_commit", "triggered_by"]
    ),
    "require_tags_at_registration": env_bool("CUSTODY_POLICY_TAGS_AT_REGISTRATION", False),
    "metric_gates": [],
    "staging_approvals": env_int("CUSTODY_POLICY_STAGING_APPROVALS", 0),
    "production_approvals": env_int("CUSTODY_POLICY_PRODUCTION_APPROVALS", 1),
    # Approvals to leave Production; unset: the same number as production_approvals.
    "demotion_approvals": env_optional_int("CUSTODY_POLICY_DEMOTION_APPROVALS"),
    # Approvals to roll a version that was in Production back into it (Archived → Production).
    "rollback_approvals": env_int("CUSTODY_POLICY_ROLLBACK_APPROVALS", 1),
    "exclude_run_author": env_bool("CUSTODY_POLICY_EXCLUDE_RUN_AUTHOR", True),
    "require_model_card": env_bool("CUSTODY_POLICY_REQUIRE_MODEL_CARD", True),
    "protected_aliases": env_list("CUSTODY_POLICY_PROTECTED_ALIASES", []),
    "archive_grace_seconds": None,
}
# Signs audit checkpoints; defaults to a key derived from SECRET_KEY. Set it separately to let
# auditors verify exports without the application's SECRET_KEY.
# Like every env_str setting it may come from a file, CUSTODY_AUDIT_SIGNING_KEY_FILE, that
# only the signer's hosts hold (docs/audit.md, "Keys").
CUSTODY_AUDIT_SIGNING_KEY = env_str("CUSTODY_AUDIT_SIGNING_KEY")
# Keys that signed earlier checkpoints and manifests, separated by commas or newlines: they
# verify, never sign (rotation). Also from CUSTODY_AUDIT_RETIRED_SIGNING_KEYS_FILE.
CUSTODY_AUDIT_RETIRED_SIGNING_KEYS = [
    key.strip()
    for key in env_str("CUSTODY_AUDIT_RETIRED_SIGNING_KEYS").replace(",", "\n").splitlines()
    if key.strip()
]
# Where signed checkpoints are published, write-once, outside the database:
# file:///path (an append-only directory on another volume) or s3://bucket/prefix.
CUSTODY_AUDIT_ANCHOR_URL = env_str("CUSTODY_AUDIT_ANCHOR_URL")
CUSTODY_AUDIT_ANCHOR_S3_ENDPOINT_URL = env_str("CUSTODY_AUDIT_ANCHOR_S3_ENDPOINT_URL")
# S3 Object Lock retention (COMPLIANCE mode) on each anchor, in days; 0 for none.
CUSTODY_AUDIT_ANCHOR_RETENTION_DAYS = env_int("CUSTODY_AUDIT_ANCHOR_RETENTION_DAYS", 0)
# "auto": events are chained after their transaction commits on PostgreSQL and as they are
# recorded on SQLite; "inline" or "deferred" force one (docs/audit.md, "Concurrency").
CUSTODY_AUDIT_CHAINING = env_str("CUSTODY_AUDIT_CHAINING", "auto")

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Webhooks (docs/webhooks.md). Deliveries go to public addresses over HTTPS only, except to
# these hosts (comma-separated names, IP addresses or CIDRs), which may also use plain HTTP.
CUSTODY_WEBHOOK_ALLOWED_HOSTS = env_list("CUSTODY_WEBHOOK_ALLOWED_HOSTS", [])
# Encrypts webhook secrets at rest (Fernet); defaults to a key derived from SECRET_KEY. To
# rotate: set the new key, list the old ones in CUSTODY_WEBHOOK_SECRET_OLD_KEYS, then run
# `manage.py rotate_webhook_secrets`.
CUSTODY_WEBHOOK_SECRET_KEY = env_str("CUSTODY_WEBHOOK_SECRET_KEY")
CUSTODY_WEBHOOK_SECRET_OLD_KEYS = env_list("CUSTODY_WEBHOOK_SECRET_OLD_KEYS", [])
CUSTODY_WEBHOOK_CONNECT_TIMEOUT = float(env_str("CUSTODY_WEBHOOK_CONNECT_TIMEOUT", "5"))
CUSTODY_WEBHOOK_READ_TIMEOUT = float(env_str("CUSTODY_WEBHOOK_READ_TIMEOUT", "10"))
CUSTODY_WEBHOOK_MAX_RESPONSE_BYTES = env_int("CUSTODY_WEBHOOK_MAX_RESPONSE_BYTES", 65536)
# Attempts per delivery, with exponential backoff from the base (10 s, 20 s, 40 s ... 1 h).
CUSTODY_WEBHOOK_MAX_ATTEMPTS = env_int("CUSTODY_WEBHOOK_MAX_ATTEMPTS", 8)
CUSTODY_WEBHOOK_RETRY_BASE_SECONDS = float(env_str("CUSTODY_WEBHOOK_RETRY_BASE_SECONDS", "10"))
# A webhook whose attempts fail this many times in a row is disabled, with a notice.
CUSTODY_WEBHOOK_DISABLE_AFTER_FAILURES = env_int("CUSTODY_WEBHOOK_DISABLE_AFTER_FAILURES", 20)
# Reviewers are reminded of a request still open after this many hours (0: never).
CUSTODY_REVIEW_REMINDER_HOURS = env_int("CUSTODY_REVIEW_REMINDER_HOURS", 48)
# Links in emails point here (e.g. https://custody.example.com).
CUSTODY_BASE_URL = env_str("CUSTODY_BASE_URL", "http://localhost:5000")

# Email to people (review requests, decisions, disabled webhooks): printed to the console
# unless an SMTP server is configured.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "custody@localhost")

# Identity, roles and grants are cached per process; each process checks at most this often
# whether they changed (core.process_cache): the bound on how long any worker may act on a
# revoked token, a deactivated user or a removed grant after the change commits.
CUSTODY_CACHE_POLL_SECONDS = float(env_str("CUSTODY_CACHE_POLL_SECONDS", "0.5"))
if not 0 <= CUSTODY_CACHE_POLL_SECONDS <= 1:
    raise ImproperlyConfigured("CUSTODY_CACHE_POLL_SECONDS must be between 0 and 1.")

# What authenticated users get on experiments and models they were not granted anything on.
CUSTODY_DEFAULT_PERMISSION = env_str("CUSTODY_DEFAULT_PERMISSION", "READ")
# The embedded default creates this admin on first start (password generated unless set).
CUSTODY_ADMIN_USERNAME = env_str("CUSTODY_ADMIN_USERNAME", "admin")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.drf.HeaderAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.drf.RuleAccess"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON is parsed one way on every route (core.mlflow_api.parse_json_bytes).
    "DEFAULT_PARSER_CLASSES": [
        "core.drf.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Custody API",
    "DESCRIPTION": "Model registry governance: policies, reviews, lineage, audit.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Security headers; HTTPS-only settings are switched on by CUSTODY_HTTPS behind a TLS proxy.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
if env_bool("CUSTODY_HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("CUSTODY_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Metrics (/metrics, core.observability): off unless a scrape token is set.
CUSTODY_METRICS_TOKEN = env_str("CUSTODY_METRICS_TOKEN")

# Logs go to stderr, one JSON object a line (LOG_FORMAT=text for plain lines), each with the
# request id. `custody.request` writes one line per request (CUSTODY_REQUEST_LOG=0: none).
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.observability.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if LOG_FORMAT == "text" else "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        "custody.request": {
            "level": "INFO" if env_bool("CUSTODY_REQUEST_LOG", True) else "WARNING",
        },
    },
}

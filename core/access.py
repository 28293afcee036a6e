"""The central access decision. Every route declares one rule; `authorize` is the only
function that decides whether a request may proceed.

A rule is `<resource>.<level>`: what the request touches and how (read, edit, manage,
create). The apps that own a resource register a resolver for it (tracking: experiments, runs,
artifacts; registry: models), which finds the object the request names and compares the
caller's effective level with the one required. `core` knows no app, so the one-way app
dependencies hold.

Resolvers fail closed: every identifier a request carries is parsed by `core.identifiers`,
the object it names is looked up with that canonical form, and a missing object is the
handler's own 404, never "allowed". The resolver writes the canonical form back into the
request (`set_target_value`), so the handler works on exactly the object that was decided on.

Unreadable objects answer exactly like missing ones (404), so ids and names leak nothing;
readable objects the caller may not change answer 403."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from core import process_cache, refusals
from core.errors import PermissionDenied, Unauthenticated

PUBLIC = "public"
AUTHENTICATED = "authenticated"
ADMIN = "admin.manage"
AUDIT_READ = "audit.read"
EXPERIMENT_READ = "experiment.read"
EXPERIMENT_EDIT = "experiment.edit"
EXPERIMENT_MANAGE = "experiment.manage"
EXPERIMENT_CREATE = "experiment.create"
RUN_READ = "run.read"
RUN_EDIT = "run.edit"
RUN_MANAGE = "run.manage"
ARTIFACT_READ = "artifact.read"
ARTIFACT_EDIT = "artifact.edit"
ARTIFACT_MANAGE = "artifact.manage"
MODEL_READ = "model.read"
MODEL_EDIT = "model.edit"
MODEL_MANAGE = "model.manage"
MODEL_CREATE = "model.create"
# A webhook: per-model ones are managed by the model's managers, registry-wide ones by admins.
WEBHOOK_MANAGE = "webhook.manage"

RULES = frozenset(
    {
        PUBLIC,
        AUTHENTICATED,
        ADMIN,
        AUDIT_READ,
        EXPERIMENT_READ,
        EXPERIMENT_EDIT,
        EXPERIMENT_MANAGE,
        EXPERIMENT_CREATE,
        RUN_READ,
        RUN_EDIT,
        RUN_MANAGE,
        ARTIFACT_READ,
        ARTIFACT_EDIT,
        ARTIFACT_MANAGE,
        MODEL_READ,
        MODEL_EDIT,
        MODEL_MANAGE,
        MODEL_CREATE,
        WEBHOOK_MANAGE,
    }
)

# Permission levels, weakest first. NONE is an explicit "no access" grant.
NONE, READ, EDIT, MANAGE = "NONE", "READ", "EDIT", "MANAGE"
LEVELS = (NONE, READ, EDIT, MANAGE)
RANK = {level: i for i, level in enumerate(LEVELS)}
REQUIRED = {"read": READ, "edit": EDIT, "manage": MANAGE, "create": EDIT}

ADMIN_ROLE = "admin"
COMPLIANCE_ROLE = "compliance"
REVIEWER_ROLE = "reviewer"

# resource -> resolver(user, level_required, target) -> the object decided on; raises on
# refusal, on malformed identifiers (400) and on missing objects (404).
Resolver = Callable[[Any, str, Any], Any]
_RESOLVERS: dict[str, Resolver] = {}

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_COMPLIANCE_READS_ONLY = "Compliance officers have read access to everything and change nothing."


# resource -> subject(target) -> {"model_name": …, "model_version": …}: what a refused write
# was about, so that it shows in that object's audit history.
_SUBJECTS: dict[str, Callable[[Any], dict[str, Any]]] = {}


def register_resolver(resource: str, resolver: Resolver) -> None:
    _RESOLVERS[resource] = resolver


def register_subject(resource: str, subject: Callable[[Any], dict[str, Any]]) -> None:
    _SUBJECTS[resource] = subject


def _denial_subject(rule: str, target: Any) -> dict[str, Any]:
    subject = _SUBJECTS.get(rule.split(".")[0])
    if subject is None or target is None:
        return {}
    try:
        return subject(target)
    except Exception:  # noqa: BLE001 - a malformed target must not hide the refusal itself
        return {}


# user id -> {group id: name}; a change of roles bumps the `access` family (accounts' signals).
_GROUPS = process_cache.Store(process_cache.ACCESS, "groups")


def _groups(user) -> dict[int, str]:
    """The caller's groups (id -> name): from the process's access cache, kept on the user
    object for the rest of the request. Read-only: the dict is shared."""
    cached = getattr(user, "_custody_groups", None)
    if cached is None:
        process_cache.refresh()
        cached = _GROUPS.get_or_load(user.pk, lambda: dict(user.groups.values_list("id", "name")))
        user._custody_groups = cached
    return cached


def roles(user) -> frozenset[str]:
    return frozenset(_groups(user).values())


def group_ids(user) -> set[int]:
    return set(_groups(user))


def is_admin(user) -> bool:
    return bool(user.is_superuser) or ADMIN_ROLE in roles(user)


def is_compliance(user) -> bool:
    return COMPLIANCE_ROLE in roles(user)


def is_reviewer(user) -> bool:
    """Reviews transition requests: the reviewer role, or an admin."""
    return REVIEWER_ROLE in roles(user) or is_admin(user)


def require_authenticated(request: HttpRequest):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise Unauthenticated(
            "Authentication required: send HTTP Basic credentials (MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD) or a bearer token (MLFLOW_TRACKING_TOKEN)."
        )
    return user


def target_sources(target: Any) -> list[dict]:
    """Where a route's identifiers are: URL kwargs, then the message (an MLflow request's
    body or query, a DRF request's data), then `target` itself when it is a plain dict."""
    sources = []
    for source in (getattr(target, "kwargs", None), getattr(target, "data", None), target):
        if isinstance(source, dict):
            sources.append(source)
    return sources


def _from_query(target: Any, source: dict) -> bool:
    http = getattr(target, "http", None)
    return source is getattr(target, "data", None) and getattr(http, "method", "") == "GET"


def target_value(target: Any, key: str) -> Any:
    """The raw value of `key` in a route's target, or None. A query string's list gives its
    first value, as the handlers read it; a JSON body's list stays a list."""
    for source in target_sources(target):
        if key in source:
            value = source[key]
            if isinstance(value, list) and _from_query(target, source):
                return value[0] if value else None
            return value
    return None


def target_values(target: Any, key: str) -> list:
    """Every value of a repeated field (`run_ids`): a query string's list or a JSON list."""
    for source in target_sources(target):
        if key in source:
            value = source[key]
            return list(value) if isinstance(value, list) else [value]
    return []


def set_target_value(target: Any, key: str, value: Any) -> None:
    """Replace `key` with its canonical form wherever the target carries it."""
    for source in target_sources(target):
        if key in source:
            source[key] = [value] if _from_query(target, source) else value


def authorize(request: HttpRequest, rule: str, target: Any = None) -> Any:
    """Decide one request and return the object decided on (None for rules about no object).
    `target` is what the resolver needs to find the object: URL kwargs, or the parsed
    MLflow request message; the resolver rewrites its identifiers to their canonical form."""
    if rule not in RULES:
        raise RuntimeError(f"Route declares unknown access rule {rule!r}")
    if rule == PUBLIC:
        return None
    user = require_authenticated(request)
    if getattr(request, "custody_auth_method", None) == "session" and request.method in _UNSAFE:
        _check_csrf(request)
    if rule == AUTHENTICATED:
        return None
    try:
        return _decide(user, rule, target)
    except PermissionDenied as exc:
        if request.method in _UNSAFE:  # refused writes are part of the trail; reads are not
            subject = _denial_subject(rule, target)
            refusals.mark(
                exc,
                refusals.denial(
                    f"{rule}.denied",
                    exc.message,
                    object_type=rule.split(".")[0],
                    object_id=request.path[:255],
                    object_name=subject.get("model_name", ""),
                    **subject,
                ),
            )
        raise


def _decide(user, rule: str, target: Any) -> Any:
    resource, level_name = rule.split(".")
    required = REQUIRED[level_name]
    if rule == ADMIN:
        if is_admin(user):
            return None
        if is_compliance(user):
            raise PermissionDenied(_COMPLIANCE_READS_ONLY)
        raise PermissionDenied("Only administrators may do this.")
    if rule == AUDIT_READ:
        if is_admin(user) or is_compliance(user):
            return None
        return _RESOLVERS[resource](user, required, target)
    compliance_write = required != READ and is_compliance(user) and not is_admin(user)
    if level_name == "create":
        if compliance_write:
            raise PermissionDenied(_COMPLIANCE_READS_ONLY)
        return None  # creating a new experiment or model needs no grant on an existing object
    # Admins and compliance officers too: the object is resolved (fail closed, canonical
    # identifiers) before anything is decided about it.
    resolved = _RESOLVERS[resource](user, READ if compliance_write else required, target)
    if compliance_write:
        raise PermissionDenied(_COMPLIANCE_READS_ONLY)
    return resolved


def effective_level(user, grants: list[tuple[int | None, int | None, str]], default: str) -> str:
    """The caller's level on one object from its grants [(user_id, group_id, level)]: an
    explicit user grant wins; otherwise the strongest group grant; otherwise the default.
    Admins manage everything; compliance officers read everything."""
    if is_admin(user):
        return MANAGE
    level = None
    for user_id, _, granted in grants:
        if user_id == user.pk:
            level = granted
    if level is None:
        member_of = group_ids(user) if grants else set()
        group_levels = [g for _, group_id, g in grants if group_id in member_of]
        level = max(group_levels, key=RANK.__getitem__) if group_levels else default
    if is_compliance(user) and RANK[level] < RANK[READ]:
        level = READ
    return level


def _check_csrf(request: HttpRequest) -> None:
    # The MLflow routes are CSRF-exempt for header-authenticated clients; a browser session
    # writing through them must still prove the request came from our own pages.
    from django.middleware.csrf import CsrfViewMiddleware

    # process_view never calls get_response or the view; only the request is checked.
    failure = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})  # type: ignore[arg-type]
    if failure is not None:
        raise PermissionDenied("CSRF verification failed: session requests need a CSRF token.")

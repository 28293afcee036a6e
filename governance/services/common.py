"""What the promotion workflow's writes share: the outcome they answer, the audit record of a
refused call, a request's audit record and the registered model's row lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from audit import services as audit
from core import refusals
from core.errors import Conflict, InvalidParameterValue, InvalidState, PermissionDenied
from core.mlflow_api import check_text
from governance import policy as rules
from governance.models import TransitionRequest as TR
from registry import selectors as registry_selectors
from registry.models import ModelVersion, RegisteredModel

F = TypeVar("F", bound=Callable[..., Any])
MAX_COMMENT = 10_000


@dataclass
class Outcome:
    """What a transition request or review led to."""

    version: ModelVersion
    request: TR | None = None
    applied: bool = False
    missing: list[rules.Missing] = field(default_factory=list)


def refusals_audited(action: str, object_type: str = "transition_request") -> Callable[[F], F]:
    """Gives a refused call's error its audit record (see core.refusals): a permission or
    separation-of-duties denial is `<action>.denied`, a rule the request does not meet yet
    (INVALID_STATE, a stale review basis) `<action>.refused`. Input mistakes and missing
    objects are not refusals."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (PermissionDenied, InvalidState, Conflict) as exc:
                denied = isinstance(exc, PermissionDenied)
                refusals.mark(
                    exc,
                    (refusals.denial if denied else refusals.rule_refusal)(
                        f"{action}.{'denied' if denied else 'refused'}",
                        exc.message,
                        object_type=object_type,
                        object_id=str(kwargs.get("request_id") or ""),
                        object_name=str(kwargs.get("name") or ""),
                        model_name=str(kwargs.get("name") or ""),
                        model_version=int_or_none(kwargs.get("version")),
                        after={
                            k: v
                            for k, v in kwargs.items()
                            if k in ("stage", "request_id", "comment", "data")
                        },
                    ),
                )
                raise

        return wrapper  # type: ignore[return-value]

    return decorator


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def checked_text(value: Any, what: str, *, required: bool = False) -> str:
    text = check_text(value or "", what, max_length=MAX_COMMENT).strip()
    if required and not text:
        raise InvalidParameterValue(f"A {what} is required.")
    return text


def request_snapshot(req: TR) -> dict[str, Any]:
    return {
        "id": req.pk,
        "version": req.version.version,
        "from_stage": req.from_stage,
        "to_stage": req.to_stage,
        "status": req.status,
        "requested_by": req.requested_by.get_username(),
    }


def audit_request(action: str, req: TR, model_name: str, **kwargs: Any) -> None:
    audit.record(
        action=action,
        object_type="transition_request",
        object_id=req.pk,
        object_name=f"{model_name}/{req.version.version} → {req.to_stage}",
        model_name=model_name,
        model_version=req.version.version,
        **kwargs,
    )


def lock_version(name: str, version: Any) -> tuple[RegisteredModel, ModelVersion]:
    model = registry_selectors.registered_model_get(name, for_update=True)
    return model, registry_selectors.model_version_get(model, version)

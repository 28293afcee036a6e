"""One refusal path: a refusal is raised once, mapped once, recorded once.

Two kinds of refusal belong in the audit trail, and only these two:
- a *security denial* (`DENIED`): no permission on the object, separation of duties, a
  compliance officer trying to change something;
- a *rule refusal* (`REFUSED`): the model's policy is not met (lineage tags, a protected
  alias, a missing card).
An input mistake (a malformed name, a reject without a reason) is a plain 400 and is not a
refusal: it says nothing about who tried to do what to which object.

The code that refuses raises an `ApplicationError` carrying `refusal=` (the audit record:
`denial(...)` or `rule_refusal(...)`), or marks an error it re-raises with `mark(...)`. The
error mappings (MLflow JSON, DRF JSON, HTML pages and the admin's messages) only render it.
`RefusalMiddleware` records each refusal of the request once, when the view has returned,
so every transaction of the refused call has rolled back and the record survives it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

DENIED = "denied"
REFUSED = "refused"

_pending: ContextVar[list | None] = ContextVar("custody_refusals", default=None)
_recorder: list[Callable[[dict[str, Any]], None]] = []
logger = logging.getLogger(__name__)


def set_recorder(recorder: Callable[[dict[str, Any]], None]) -> None:
    """The audit app registers the one function that writes a refusal (core knows no app)."""
    _recorder[:] = [recorder]


def denial(action: str, reason: str, **record: Any) -> dict[str, Any]:
    return {"action": action, "outcome": DENIED, "reason": reason[:2000], **record}


def rule_refusal(action: str, reason: str, **record: Any) -> dict[str, Any]:
    return {"action": action, "outcome": REFUSED, "reason": reason[:2000], **record}


def register(exc: Any) -> None:
    """Called by `ApplicationError` when it carries a refusal: queued for this request, or
    written at once outside a request (a management command, a task)."""
    pending = _pending.get()
    if pending is None:
        _write(exc)
    elif all(queued is not exc for queued in pending):
        pending.append(exc)


def mark(exc: Any, record: dict[str, Any]) -> Any:
    """Give an error raised elsewhere its refusal record, unless it already has one."""
    if getattr(exc, "refusal", None) is None:
        exc.refusal = record
        register(exc)
    return exc


def kind(exc: Any) -> str:
    """How a page shows an error: a security denial, a rule refusal, or an input mistake."""
    refusal = getattr(exc, "refusal", None)
    if refusal is not None:
        return refusal["outcome"]
    return DENIED if getattr(exc, "error_code", "") == "PERMISSION_DENIED" else "mistake"


# How people read the three kinds, on pages and in the admin's messages.
TITLES = {
    DENIED: "Not allowed",
    REFUSED: "Not yet: the model's policy is not met",
    "mistake": "Cannot do that",
}


def show(request: Any, exc: Any) -> None:
    """An error as a message on the page the user goes back to (web UI, admin)."""
    from django.contrib import messages

    kind_of = kind(exc)
    level = messages.WARNING if kind_of == REFUSED else messages.ERROR
    messages.add_message(request, level, f"{TITLES[kind_of]}. {exc.message}")


def _write(exc: Any) -> None:
    from django.db import transaction

    for recorder in _recorder:
        try:
            with transaction.atomic():
                recorder(exc.refusal)
        except Exception:  # the client still gets its 4xx; the failure is logged
            logger.exception("Could not record a refused attempt")


class RefusalMiddleware:
    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request):
        token = _pending.set([])
        try:
            return self.get_response(request)
        finally:
            pending = _pending.get() or []
            _pending.reset(token)
            for exc in pending:
                _write(exc)

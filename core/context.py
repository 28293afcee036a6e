"""Who is asking, for the audit trail: set once per request by the middleware, read by
services without threading `request` through every call."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    user_id: int | None = None
    username: str = ""
    auth_method: str = "system"
    token_id: int | None = None
    client_ip: str = ""
    user_agent: str = ""


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "custody_request_context",
    default=RequestContext(),  # noqa: B039 - frozen dataclass
)


def current() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset_context(token: contextvars.Token) -> None:
    _current.reset(token)


def update_context(**changes) -> None:
    _current.set(replace(_current.get(), **changes))


def new_request_id() -> str:
    return uuid.uuid4().hex

"""Page tokens and page sizes for the MLflow search endpoints; `limit`/`offset` pages for
the /api/v1 lists.

A page token is an offset signed with the server's key and bound to the query it belongs to
(endpoint, filter, order, experiments, view, caller). A forged or tampered token, or one
replayed against another query, is refused instead of skipping filters or forcing huge
offsets (reference/security.md §2.6)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from django.core import signing

from core.errors import InvalidParameterValue

_SALT = "custody.page-token"
MAX_OFFSET = 10_000_000
MAX_TOKEN_LENGTH = 1000
OFFSET_HELP = f"rows to skip, 0 to {MAX_OFFSET:,}"


def limit_help(max_limit: int, default_limit: int = 50) -> str:
    """The OpenAPI description of a list's `limit` (what `limit_and_offset` accepts)."""
    return f"page size, 1 to {max_limit} (0 or absent: {default_limit})"


def limit_and_offset(params: Any, *, max_limit: int, default_limit: int = 50) -> tuple[int, int]:
    """A /api/v1 list's `limit` and `offset` query parameters: ASCII digits only, the limit
    at most `max_limit` (0 or absent: `default_limit`), the offset at most MAX_OFFSET, so no
    spelling reaches the database as a number it cannot hold."""
    values = []
    for name, default, maximum in (("limit", default_limit, max_limit), ("offset", 0, MAX_OFFSET)):
        raw = params.get(name)
        if raw in (None, ""):
            values.append(default)
            continue
        digits = isinstance(raw, str) and raw.isascii() and raw.isdigit()
        # int() refuses strings of more than 4,300 digits: the length is looked at first.
        if not digits or len(raw) > len(str(maximum)) or int(raw) > maximum:
            raise InvalidParameterValue(f"'{name}' must be a whole number from 0 to {maximum}.")
        values.append(int(raw) or default)
    return values[0], values[1]


def _scope_digest(scope: dict[str, Any]) -> str:
    canonical = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def encode_page_token(offset: int, scope: dict[str, Any]) -> str:
    """A token for the page starting at `offset` of the query described by `scope`."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        # Paging this deep is refused up front rather than handing out an unusable token.
        raise InvalidParameterValue(
            f"Cannot page beyond {MAX_OFFSET} results; narrow the search with a filter."
        )
    return signing.dumps({"o": offset, "s": _scope_digest(scope)}, salt=_SALT, compress=False)


def decode_page_token(token: str | None, scope: dict[str, Any]) -> int:
    """The offset in `token`; 0 without one. Anything not issued by this server for this very
    scope is an InvalidParameterValue("Invalid page token: ...")."""
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidParameterValue("Invalid page token: not a token issued by this server.")
    try:
        payload = signing.loads(token, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidParameterValue(
            "Invalid page token: it was not issued by this server or has been altered."
        ) from None
    offset = payload.get("o") if isinstance(payload, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidParameterValue("Invalid page token: bad offset.")
    if payload.get("s") != _scope_digest(scope):
        raise InvalidParameterValue(
            "Invalid page token: it belongs to a different query (filter, order, experiments "
            "or caller changed)."
        )
    return offset


def validate_max_results(
    value: Any, *, default: int | None, maximum: int, name: str = "max_results"
) -> int:
    """The page size: `default` when absent (None: required), else a positive integer at most
    `maximum`, with MLflow's messages."""
    if value is None or value == "":
        if default is None:
            raise InvalidParameterValue(
                f"Invalid value for '{name}': it must be a positive integer (got nothing)."
            )
        return default
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
        value = int(value)  # from a query string
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(f"Invalid value {value!r} for '{name}': expected an integer.")
    if value <= 0:
        raise InvalidParameterValue(
            f"Invalid value {value} for parameter '{name}' supplied. It must be a positive integer."
        )
    if value > maximum:
        raise InvalidParameterValue(
            f"Invalid value {value} for parameter '{name}' supplied. It must be at most {maximum}."
        )
    return value

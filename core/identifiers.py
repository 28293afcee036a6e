"""Identifiers are parsed once, at the boundary.

One function per kind of identifier turns raw input (a JSON field, a query parameter, a URL
segment) into its canonical form or raises a 400 that says what is allowed. The access layer
resolves the object with the canonical form, decides on that object, and hands the canonical
form on to the handler, so the access decision and the handler can never disagree about
which object a request names.

Names (registered models, experiments) are compared by their identity key (NFKC, casefolded;
`name_identity`), the same key that keeps two look-alike names from being created: every
spelling that could not be created beside an existing name finds that name. Spellings that
could never be created (surrounding whitespace, invisible or control characters) are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidParameterValue
from core.mlflow_api import _short, check_text, clean_name, name_identity

MAX_MODEL_NAME = 500
MAX_EXPERIMENT_NAME = 500
# ASCII digits only: `str.isdigit` and `\d` also accept "１" and "١", and `$` accepts a
# trailing newline, which would make two spellings of one id.
_ASCII_INT = re.compile(r"[0-9]{1,18}\Z")
_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,32}\Z")
_LOGGED_MODEL_ID = re.compile(r"[0-9A-Za-z_-]{1,64}\Z")
_ALIAS = re.compile(r"[\w-]{1,255}\Z")
_WEBHOOK_ID = re.compile(r"[0-9A-Fa-f]{32}\Z")
_DELIVERY_ID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z"
)
_STAGE_WORD = re.compile(r"[A-Za-z]{1,20}\Z")


def _required(value: Any, field: str) -> Any:
    if isinstance(value, list):  # a query string's values
        value = value[0] if value else None
    if value is None or value == "":
        raise InvalidParameterValue(f"Missing value for required parameter '{field}'.")
    return value


def model_name(value: Any, field: str = "name") -> str:
    """A registered model's name as given: NFC, without surrounding whitespace or invisible
    characters. Look it up by `name_key(...)`."""
    return clean_name(_required(value, field), field, max_length=MAX_MODEL_NAME)


def experiment_name(value: Any, field: str = "experiment_name") -> str:
    return clean_name(_required(value, field), field, max_length=MAX_EXPERIMENT_NAME)


def name_key(canonical_name: str) -> str:
    """The identity key stored beside every name (`name_key` columns)."""
    return name_identity(canonical_name)


def _int(value: Any, field: str, what: str, *, minimum: int = 0) -> int:
    value = _required(value, field)
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _ASCII_INT.match(value):
        number = int(value)
    else:
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{field}': {what} are decimal "
            "integers (ASCII digits, no spaces or signs)."
        )
    if not minimum <= number < 2**63:
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{field}': out of range."
        )
    return number


def experiment_id(value: Any, field: str = "experiment_id") -> int:
    return _int(value, field, "experiment ids")


def request_id(value: Any, field: str = "request_id") -> int:
    return _int(value, field, "transition request ids", minimum=1)


def model_version(value: Any, field: str = "version") -> int:
    number = _int(value, field, "model versions", minimum=1)
    if number >= 2**31:
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{field}': out of range."
        )
    return number


def _server_id(value: Any, field: str, pattern: re.Pattern, what: str) -> str:
    """An id the server made (lowercase hex); other letter cases find the same object."""
    value = _required(value, field)
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{field}': {what}."
        )
    return value.lower()


def run_id(value: Any, field: str = "run_id") -> str:
    return _server_id(value, field, _RUN_ID, "run ids are up to 32 letters, digits, '-' or '_'")


def logged_model_id(value: Any, field: str = "model_id") -> str:
    return _server_id(
        value,
        field,
        _LOGGED_MODEL_ID,
        "logged model ids are up to 64 letters, digits, '-' or '_' (e.g. 'm-' and 32 hex digits)",
    )


def webhook_id(value: Any, field: str = "webhook_id") -> str:
    return _server_id(value, field, _WEBHOOK_ID, "webhook ids are 32 hexadecimal digits")


def delivery_id(value: Any, field: str = "delivery_id") -> str:
    return _server_id(
        value, field, _DELIVERY_ID, "delivery ids are UUIDs (8-4-4-4-12 hexadecimal digits)"
    )


@dataclass(frozen=True)
class ModelUri:
    """`models:/<name>/<version|stage|latest>` or `models:/<name>@<alias>`, parsed."""

    name: str
    version: int | None = None
    stage: str | None = None
    latest: bool = False
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}/{'latest' if self.latest else self.stage}"


_MODELS_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<ref>[^/@]+)|@(?P<alias>[^/@]+))\Z")
_URI_HELP = (
    "use models:/<name>/<stage>, models:/<name>/latest, models:/<name>/<version> or "
    "models:/<name>@<alias>, without spaces around any part"
)


def model_uri(value: Any, field: str = "uri") -> ModelUri:
    value = check_text(_required(value, field), field, max_length=2000)
    match = _MODELS_URI.match(value)
    if match is None:
        raise InvalidParameterValue(f"Invalid model URI {value[:200]!r}: {_URI_HELP}.")
    name = model_name(match["name"], "model name in the URI")
    alias, ref = match["alias"], match["ref"]
    if alias is not None:
        if not _ALIAS.match(alias):
            raise InvalidParameterValue(
                f"Invalid alias {alias[:60]!r} in the model URI: aliases are 1-255 letters, "
                "digits, '_' or '-'."
            )
        return ModelUri(name=name, alias=alias)
    if _ASCII_INT.match(ref):
        return ModelUri(name=name, version=model_version(ref, "version in the URI"))
    if ref.lower() == "latest":
        return ModelUri(name=name, latest=True)
    if _STAGE_WORD.match(ref):
        # Which words are stages is the registry's to say (`registry.transitions`).
        return ModelUri(name=name, stage=ref)
    raise InvalidParameterValue(f"Invalid model URI {value[:200]!r}: {_URI_HELP}.")

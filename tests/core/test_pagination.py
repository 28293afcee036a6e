"""Page tokens are signed offsets bound to their query; page sizes follow MLflow's rules."""

from __future__ import annotations

import base64
import json

import pytest
from django.core import signing
from django.test import override_settings

from core.errors import InvalidParameterValue
from core.pagination import (
    MAX_OFFSET,
    decode_page_token,
    encode_page_token,
    validate_max_results,
)

SCOPE = {"endpoint": "runs/search", "filter": "metrics.m > 1", "order_by": [], "user": 7}


def test_round_trip():
    token = encode_page_token(1000, SCOPE)
    assert isinstance(token, str)
    assert decode_page_token(token, dict(SCOPE)) == 1000
    # Key order of the scope does not matter; its content does.
    assert decode_page_token(token, dict(reversed(list(SCOPE.items())))) == 1000


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_the_first_page(token):
    assert decode_page_token(token, SCOPE) == 0


@pytest.mark.parametrize(
    "changed",
    [
        {"filter": "metrics.m > 2"},
        {"order_by": ["metrics.m DESC"]},
        {"user": 8},
        {"endpoint": "experiments/search"},
        {"experiments": [1, 2]},
    ],
)
def test_a_token_from_another_query_is_refused(changed):
    token = encode_page_token(10, SCOPE)
    with pytest.raises(InvalidParameterValue, match="Invalid page token: .*different query"):
        decode_page_token(token, {**SCOPE, **changed})


def _forge(payload: object, *, key: str | None = None, salt: str = "custody.page-token") -> str:
    return signing.dumps(payload, key=key, salt=salt)


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "!!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps({"o": 5}).encode()).decode(),
        "eyJvIjo1fQ",  # base64 of {"o":5}, unsigned
        "x" * 5000,
    ],
)
def test_garbage_is_refused(token):
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(token, SCOPE)


def test_non_string_tokens_are_refused():
    for token in (5, ["a"], {"o": 1}):
        with pytest.raises(InvalidParameterValue, match="Invalid page token"):
            decode_page_token(token, SCOPE)  # type: ignore[arg-type]


def test_tampered_token_is_refused():
    token = encode_page_token(10, SCOPE)
    value, rest = token.split(":", 1)  # payload:timestamp:signature
    payload = json.loads(signing.b64_decode(value.encode()))
    payload["o"] = 10**6
    forged_value = signing.b64_encode(json.dumps(payload).encode()).decode()
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(f"{forged_value}:{rest}", SCOPE)
    # Flipping one character of the signature is refused too.
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(flipped, SCOPE)


def test_token_signed_with_another_key_or_salt_is_refused():
    from core.pagination import _scope_digest

    payload = {"o": 5, "s": _scope_digest(SCOPE)}
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(_forge(payload, key="another-secret-key-" + "y" * 40), SCOPE)
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(_forge(payload, salt="some.other.salt"), SCOPE)
    # And the same token stops working when the server's key changes.
    token = encode_page_token(5, SCOPE)
    with override_settings(SECRET_KEY="rotated-secret-key-" + "z" * 40):
        with pytest.raises(InvalidParameterValue, match="Invalid page token"):
            decode_page_token(token, SCOPE)


@pytest.mark.parametrize("offset", [-5, 10**18, "x", 1.5, True, None, MAX_OFFSET + 1])
def test_correctly_signed_but_impossible_offsets_are_refused(offset):
    """Even a holder of the key (or a future bug) cannot make the server skip far or back."""
    from core.pagination import _scope_digest

    token = _forge({"o": offset, "s": _scope_digest(SCOPE)})
    with pytest.raises(InvalidParameterValue, match="Invalid page token: bad offset"):
        decode_page_token(token, SCOPE)


def test_encode_refuses_impossible_offsets():
    for offset in (-1, MAX_OFFSET + 1):
        with pytest.raises(InvalidParameterValue):
            encode_page_token(offset, SCOPE)
    assert decode_page_token(encode_page_token(MAX_OFFSET, SCOPE), SCOPE) == MAX_OFFSET


# ---------------------------------------------------------------------------------------------
# max_results


def test_max_results_default_and_bounds():
    assert validate_max_results(None, default=1000, maximum=50000) == 1000
    assert validate_max_results("", default=100, maximum=1000) == 100
    assert validate_max_results(1, default=1000, maximum=50000) == 1
    assert validate_max_results(50000, default=1000, maximum=50000) == 50000
    assert validate_max_results("25", default=1000, maximum=50000) == 25


def test_max_results_required_when_there_is_no_default():
    with pytest.raises(InvalidParameterValue, match="must be a positive integer"):
        validate_max_results(None, default=None, maximum=50000)


@pytest.mark.parametrize("value", [0, -1, -2147483648, "0", "-3"])
def test_max_results_must_be_positive(value):
    with pytest.raises(InvalidParameterValue, match="must be a positive integer"):
        validate_max_results(value, default=1000, maximum=50000)


@pytest.mark.parametrize(
    ("value", "maximum"), [(50001, 50000), (1001, 1000), (200001, 200000), (2**63, 50000)]
)
def test_max_results_above_the_maximum(value, maximum):
    with pytest.raises(InvalidParameterValue, match=f"must be at most {maximum}"):
        validate_max_results(value, default=None, maximum=maximum)


@pytest.mark.parametrize("value", ["abc", 1.5, True, [1], {"a": 1}, "1.5", "1e3"])
def test_max_results_must_be_an_integer(value):
    with pytest.raises(InvalidParameterValue, match="max_results"):
        validate_max_results(value, default=1000, maximum=50000)


def test_max_results_message_names_the_parameter():
    with pytest.raises(InvalidParameterValue, match="'page_size'"):
        validate_max_results(0, default=10, maximum=100, name="page_size")

"""Every integer parameter of every /api/v1 operation, enumerated from the OpenAPI schema (so a
new route or parameter cannot escape), sent the spellings a database or `int()` chokes on:
past bigint, 5,000 digits, negative, non-ASCII digits, exponents, hex, padding. The answer
is never a 5xx; where the request is otherwise acceptable, a refusal is a 400 that names
the parameter (reference/security.md §4). The property-based fuzzer (test_schemathesis.py)
found the unbounded `offset` only by chance; this finds it every run."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from accounts import services

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)

SPELLINGS = [
    "99999999999999999999999999",
    "9223372036854775808",  # one past bigint
    "2147483648",  # one past integer
    "-1",
    "-9223372036854775809",
    "²",  # str.isdigit() says yes, int() says no
    "٣",  # int() says 3
    "1e3",
    "0x1f",
    " 7",
    "+7",
    "1_000",
    "7.0",
    "9" * 5000,  # int() refuses more than 4,300 digits
]


def _integer_parameters() -> list[tuple[str, str, str, str]]:
    found = []
    for path, operations in SCHEMA["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter.get("schema", {}).get("type") == "integer":
                    found.append((method.upper(), path, parameter["in"], parameter["name"]))
    return found


PARAMETERS = _integer_parameters()


def test_the_schema_has_integer_parameters_to_try():
    # If the generator stopped typing them, the test below would try nothing.
    assert {("GET", "/api/v1/transition-requests", "query", "offset")} <= set(PARAMETERS)
    assert len(PARAMETERS) >= 15


@pytest.fixture
def admin_client(client, db):
    user = services.user_create(username="int-admin", role="admin")
    client.defaults["HTTP_AUTHORIZATION"] = (
        f"Bearer {services.token_create(user=user, name='ints')[1]}"
    )
    return client


# What an operation needs besides the parameter tried, so that the parameter is what is judged.
REQUIRED = {"/api/v1/lineage": {"node": "dataset:orders@v1"}}


def _call(client, method: str, path: str, where: str, name: str, spelling: str | None):
    url, query = path, dict(REQUIRED.get(path, {}))
    if spelling is not None:
        if where == "path":
            url = url.replace("{" + name + "}", spelling.replace(" ", "%20"))
        else:
            query[name] = spelling
    url = re.sub(r"\{[^}]+\}", "1", url)
    if method == "GET":
        return client.get(url, query)
    return client.generic(method, url, b"{}", content_type="application/json")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "path", "where", "name"), PARAMETERS)
def test_no_integer_spelling_is_a_server_error(admin_client, method, path, where, name):
    # A query parameter's refusals must name it, when the request is otherwise acceptable.
    judged = (
        where == "query" and _call(admin_client, method, path, where, name, None).status_code < 400
    )
    failures = []
    for spelling in SPELLINGS:
        response = _call(admin_client, method, path, where, name, spelling)
        if response.status_code >= 500:
            failures.append((spelling, response.status_code, response.content[:200]))
        elif response.status_code == 400 and judged:
            error = response.json()["error"]
            assert name in error["message"] + str(error["details"]), (spelling, error)
    assert not failures, failures

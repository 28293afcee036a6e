"""Queries compiled once per process (core.prepared) read exactly what the ORM reads, refuse
shapes whose SQL would vary, and keep the hot routes' answers at the edges of their inputs;
the PostgreSQL backend skips the health check only for a connection that just answered."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from accounts import services as accounts
from accounts.models import ApiToken
from core.prepared import OneOrMany, PreparedQuery
from tests.conftest import MlflowApiClient

pytestmark = pytest.mark.django_db


def test_whole_rows_and_values_match_the_orm_with_the_database_converters():
    user = accounts.user_create(username="prep", role="data-scientist", password="prep-pw-1")
    token = accounts.token_create(user=user, name="t")[0]
    by_id = PreparedQuery(lambda pk: ApiToken.objects.filter(pk=pk), int)
    found = by_id.first(token.pk)
    expected = ApiToken.objects.get(pk=token.pk)
    assert found is not None and found.pk == token.pk
    for field in ApiToken._meta.concrete_fields:  # datetimes come back as datetimes on SQLite too
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert by_id.first(token.pk + 1000) is None
    names = PreparedQuery(
        lambda user_id, name: ApiToken.objects.filter(user_id=user_id, name=name).values_list(
            "name", "created_at"
        ),
        int,
        str,
    )
    assert names.all(user.pk, "t") == [("t", expected.created_at)]
    assert names.all(user.pk, "other") == []
    # A constant beside the arguments (revoked_at IS NULL, a flag) stays a constant.
    live = PreparedQuery(
        lambda user_id: (
            ApiToken.objects.filter(user_id=user_id, revoked_at__isnull=True)
            .order_by("-created_at")
            .values_list("name", flat=True)
        ),
        int,
    )
    assert live.all(user.pk) == ["t"]


def test_one_or_many_gives_the_same_rows_either_way():
    user = accounts.user_create(username="many", role="data-scientist", password="many-pw-1")
    for name in ("a", "b"):
        accounts.token_create(user=user, name=name)
    other = accounts.user_create(username="other", role="data-scientist", password="o-pw-12")
    accounts.token_create(user=other, name="c")
    tokens = OneOrMany(
        lambda **where: ApiToken.objects.filter(**where).values_list("user_id", "name"),
        "user_id",
        int,
    )
    assert sorted(tokens.rows([user.pk])) == [(user.pk, "a"), (user.pk, "b")]
    assert sorted(tokens.rows([user.pk, other.pk])) == sorted(
        [(user.pk, "a"), (user.pk, "b"), (other.pk, "c")]
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda value: ApiToken.objects.filter(name__icontains=value),  # the value is rewritten
        lambda value: ApiToken.objects.filter(name="fixed"),  # the argument is not used
        lambda value: ApiToken.objects.select_related("user").filter(name=value),
        lambda value: ApiToken.objects.filter(name=value).values("name"),
    ],
    ids=["transformed", "unused", "select_related", "values"],
)
def test_shapes_whose_sql_would_vary_are_refused_when_first_compiled(build):
    with pytest.raises(ImproperlyConfigured):
        PreparedQuery(build, str).all("x")


def test_arguments_must_have_the_declared_type():
    by_id = PreparedQuery(lambda pk: ApiToken.objects.filter(pk=pk), int)
    with pytest.raises(TypeError):
        by_id.all("1")


def test_hot_routes_at_the_edges_of_their_columns_range(client):
    """The largest version number and id the columns hold find nothing, and a version past
    the column's range is refused by its parser before any query."""
    accounts.user_create(username="edge", role="data-scientist", password="edge-pw-1")
    client.login(username="edge", password="edge-pw-1")
    api = MlflowApiClient(client)
    assert api.post("registered-models/create", {"name": "edge-model"}).status_code == 200
    response = api.get("model-versions/get", {"name": "edge-model", "version": str(2**31 - 1)})
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    response = api.get("model-versions/get", {"name": "edge-model", "version": str(2**31)})
    assert response.status_code == 400, response.content
    assert "out of range" in response.json()["message"]
    response = api.get("experiments/get", {"experiment_id": "999999999999"})
    assert response.status_code == 404, response.content
    response = api.get("runs/get", {"run_id": "f" * 32})
    assert response.status_code == 404, response.content


def _wsgi_get(handler, path: str, query: str, authorization: str) -> int:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": authorization,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    status: list[str] = []
    response = handler(environ, lambda s, headers, exc_info=None: status.append(s))
    body = b"".join(response)
    response.close()  # request_finished: Django's end-of-request connection handling
    assert json.loads(body) is not None
    return int(status[0].split()[0])


@pytest.mark.django_db(transaction=True)
def test_the_health_check_runs_only_after_a_connection_sat_idle(monkeypatch):
    """Through the WSGI handler gunicorn calls (the test client turns the connection
    handling off): back-to-back requests send no `SELECT 1`; a connection idle past
    FRESH_SECONDS is checked first, as Django does."""
    if connection.vendor != "postgresql":
        pytest.skip("the health-check backend is PostgreSQL's (run with DATABASE_URL=postgres://)")
    from core.postgresql import base as backend

    user = accounts.user_create(username="idle", role="data-scientist", password="idle-pw-1")
    raw = accounts.token_create(user=user, name="t")[1]
    checks: list[int] = []
    real = backend.DatabaseWrapper.is_usable
    monkeypatch.setattr(
        backend.DatabaseWrapper, "is_usable", lambda self: checks.append(1) or real(self)
    )
    handler = WSGIHandler()
    from tracking import services as tracking

    experiment = tracking.experiment_create(name="idle", owner=user)
    query = f"experiment_id={experiment.experiment_id}"
    # The first request meets a connection no request has finished on yet: it is checked.
    assert _wsgi_get(handler, "/api/2.0/mlflow/experiments/get", query, f"Bearer {raw}") == 200
    assert len(checks) <= 1
    checks.clear()
    for _ in range(3):
        assert _wsgi_get(handler, "/api/2.0/mlflow/experiments/get", query, f"Bearer {raw}") == 200
    assert checks == []
    monkeypatch.setattr(backend, "FRESH_SECONDS", 0.0)
    assert _wsgi_get(handler, "/api/2.0/mlflow/experiments/get", query, f"Bearer {raw}") == 200
    assert checks == [1]

"""Malformed requests to the MLflow API are 4xx JSON errors and change nothing
(reference/security.md §2.4)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import uuid

import pytest
from django.urls import get_resolver

from core.middleware import MAX_URI_BYTES
from tests.core.test_route_inventory import walk
from tests.personas import to_production_request
from tracking.models import Experiment, Run

pytestmark = pytest.mark.django_db

MLFLOW = "/api/2.0/mlflow"
URL = f"{MLFLOW}/experiments/create"


@pytest.fixture
def client(auth_client):
    return auth_client


def post_raw(client, body: bytes, content_type: str = "application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def assert_refused(response, status: int = 400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error_code"] and body["message"]
    return body["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        b'{"name": "\xc3"}',
        b'{"name": "\xc0\xae"}',
        b"{not json",
        b"[1, 2]",
        b'"just a string"',
        b'{"name": NaN}',
        b'{"name": "a", "name": "b"}',
        b'{"name": "long", "n": ' + b"9" * 5000 + b"}",  # int() refuses > 4,300 digits
    ],
)
def test_malformed_json_bodies(client, raw):
    count = Experiment.objects.count()
    assert_refused(post_raw(client, raw))
    assert Experiment.objects.count() == count


def test_deeply_nested_json(client):
    depth = 100_000
    message = assert_refused(post_raw(client, b"[" * depth + b"]" * depth))
    assert "nested" in message or "JSON" in message
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    assert_refused(post_raw(client, nested))


def test_a_number_int_cannot_hold_is_a_400_on_every_mlflow_body_route(client):
    """`json.loads` raises a plain ValueError (not a JSONDecodeError) for an integer of more
    than 4,300 digits; it was a 500 on every route that reads a JSON body. Every MLflow
    route with a JSON body, from the route table, each under its first prefix."""
    from core import mlflow_api

    get_resolver().url_patterns  # noqa: B018 - the route table fills as the URLs load
    body = b'{"name": "x", "run_id": "r", "key": "k", "value": ' + b"9" * 5000 + b"}"
    checked = []
    for (prefixes, route_path), route in mlflow_api.ROUTES.items():
        for method, (handler, *_rest) in route.methods.items():
            if method in ("GET", "HEAD", "DELETE") or getattr(handler, "raw_body", False):
                continue
            url = re.sub(r"<path:\w+>", "1/0123456789abcdef0123456789abcdef/a/f", route_path)
            url = "/" + prefixes[0] + re.sub(r"<str:\w+>", "m-x", url)
            response = client.generic(method, url, body, content_type="application/json")
            assert "4,300 digits" in assert_refused(response), (method, url)
            checked.append((method, url))
    assert ("POST", f"{MLFLOW}/runs/log-metric") in checked
    assert len(checked) > 40, len(checked)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", '"><script>alert(1)</script>'],
)
def test_wrong_content_type(client, content_type):
    response = post_raw(client, b'{"name": "x"}', content_type=content_type)
    message = assert_refused(response)
    assert "<script>" not in message
    assert not Experiment.objects.filter(name="x").exists()


@pytest.mark.parametrize(
    "name",
    ["a\u0000b", "\ud800", "x" * 501],
)
def test_unstorable_strings(client, name):
    body = json.dumps({"name": name}).encode()
    assert_refused(post_raw(client, body))
    assert Experiment.objects.count() == 1


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, "abc", 1.5, True, [], {}])
def test_int64_fields_reject_bad_values(client, value):
    response = client.post(
        "/api/2.0/mlflow/runs/create",
        json.dumps({"experiment_id": "0", "start_time": value}),
        content_type="application/json",
    )
    assert_refused(response)


def test_oversized_body_is_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = post_raw(client, b'{"name": "' + b"x" * 2048 + b'"}')
    assert_refused(response, status=413)


def test_unknown_route_is_not_a_5xx(client):
    response = client.post("/api/2.0/mlflow/nope", b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


# ------------------------------------------------------------------------------- /api/v1


def assert_v1_refused(response, status: int = 400) -> str:
    """The /api/v1 error shape: {"error": {"code", "message", "details", "request_id"}}."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] and error["message"]
    return error["message"]


def v1_write_routes():
    """(route, method) of every /api/v1 DRF view that takes a body."""
    for route, callback in walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None)
        if route.startswith("api/v1/") and view_class is not None:
            for method in ("post", "put", "patch"):
                if hasattr(view_class, method):
                    yield route, method.upper()


def test_json_no_parser_can_hold_is_a_400_on_every_v1_write_route(people, fraud, settings):
    """DRF's own parser let a RecursionError through as a 500 (after the middleware's
    parse had given up on the same body), and `json.loads` raises a plain ValueError for an
    integer of more than 4,300 digits. The routes name real objects, and the caller is an
    admin, so each request gets as far as reading its body."""
    from webhooks import services as webhook_services

    settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    webhook, _ = webhook_services.webhook_create(
        user=people["admin"].user,
        name="nested",
        url="http://127.0.0.1:9/hook",
        events=["model_version.created"],
    )
    values = {
        "name": "fraud",
        "version": "1",
        "experiment_id": str(Run.objects.get(pk=fraud).experiment_id),
        "request_id": str(to_production_request(people)),
        "webhook_id": webhook.webhook_id,
        # Replaying reads no body: a delivery that does not exist is its JSON 404.
        "delivery_id": str(uuid.uuid4()),
    }
    depth = 100_000
    bodies = [
        (b"[" * depth + b"]" * depth, "nested"),
        (b'{"a":' * depth + b"1" + b"}" * depth, "nested"),
        (b'{"name": "x", "version": ' + b"9" * 5000 + b"}", "4,300 digits"),
    ]
    checked = []
    for route, method in v1_write_routes():
        url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
        for body, said in bodies:
            response = people["admin"].client.generic(
                method, url, body, content_type="application/json"
            )
            if url.endswith("/replay"):
                assert_v1_refused(response, status=404)
                continue
            assert said in assert_v1_refused(response), (method, url)
        checked.append((method, url))
    assert ("POST", "/api/v1/tokens") in checked
    assert ("POST", "/api/v1/lineage/links") in checked
    assert len(checked) >= 10, checked


FIFTY_MB = b'{"name": "' + b"x" * (50 * 1024**2) + b'"}'


def test_50mb_body_on_v1_is_a_json_413(client):
    """The unstorable-input middleware meets the oversized body first; Django's answer to
    that was its HTML 400 page."""
    response = client.generic("POST", "/api/v1/tokens", FIFTY_MB, content_type="application/json")
    assert "larger" in assert_v1_refused(response, status=413)
    response = client.generic(
        "POST", "/api/v1/tokens", FIFTY_MB, content_type="application/x-www-form-urlencoded"
    )
    assert_v1_refused(response, status=413)


def test_50mb_body_on_mlflow_routes_is_an_mlflow_413(client):
    response = post_raw(client, FIFTY_MB)
    assert "larger" in assert_refused(response, status=413)
    assert Experiment.objects.count() == 1


def test_50mb_form_on_a_page_is_a_plain_413(client):
    response = client.generic(
        "POST", "/login/", FIFTY_MB, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


# ------------------------------------------------------------- chunked bodies, long URLs


def post_chunked(client, url: str, body: bytes, *, terminated: bool = True):
    """A body as gunicorn hands over a chunked one: de-chunked in wsgi.input, no
    Content-Length, and `wsgi.input_terminated` saying the input ends with the body."""
    return client.generic(
        "POST",
        url,
        b"",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": terminated},
    )


def test_chunked_json_body_is_read(client):
    response = post_chunked(client, URL, b'{"name": "sent-chunked"}')
    assert response.status_code == 200, response.content
    assert Experiment.objects.filter(name="sent-chunked").exists()
    response = post_chunked(client, "/api/v1/tokens", b'{"name": "chunked-token"}')
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "chunked-token"


def test_chunked_body_over_the_limit_is_a_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b'{"name": "' + b"x" * 2048 + b'"}'
    assert_refused(post_chunked(client, URL, body), status=413)
    assert_v1_refused(post_chunked(client, "/api/v1/tokens", body), status=413)
    assert Experiment.objects.count() == 1


def test_chunked_body_the_server_cannot_delimit_is_a_411(client):
    response = post_chunked(client, URL, b'{"name": "x"}', terminated=False)
    assert "Content-Length" in assert_refused(response, status=411)
    response = post_chunked(client, "/api/v1/tokens", b'{"name": "x"}', terminated=False)
    assert_v1_refused(response, status=411)


LONG = "x" * (MAX_URI_BYTES + 1)


def test_url_over_the_limit_is_a_414_in_each_surface_shape(client):
    response = client.get("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": LONG})
    assert "8190" in assert_refused(response, status=414)
    assert_v1_refused(client.get("/api/v1/resolve", {"uri": LONG}), status=414)
    response = client.get("/experiments/", {"q": LONG})
    assert response.status_code == 414
    assert response["Content-Type"].startswith("text/plain")


# Against gunicorn itself: its request-line limit and its de-chunking are what matter.


def live_request(server, method: str, path: str, body=None, headers: dict | None = None):
    """One raw request to the live server (http.client sends an iterable body chunked,
    without Content-Length); answers (status, content type, body)."""
    credentials = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Basic {credentials}", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_live_chunked_json_body_is_read(live_server_process):
    name = f"chunked-{uuid.uuid4().hex[:8]}"
    parts = [b'{"name": ', json.dumps(name).encode(), b"}"]
    status, content_type, body = live_request(
        live_server_process,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        body=iter(parts),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    experiment_id = json.loads(body)["experiment_id"]
    status, _, body = live_request(
        live_server_process, "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}"
    )
    assert json.loads(body)["experiment"]["name"] == name
    status, _, body = live_request(
        live_server_process,
        "POST",
        "/api/v1/tokens",
        body=iter([b'{"name": "chunked', b'-token"}']),
        headers={"Content-Type": "application/json"},
    )
    assert status == 201, body
    assert json.loads(body)["name"] == "chunked-token"


def test_live_url_over_the_limit_is_a_json_414(live_server_process):
    status, content_type, body = live_request(
        live_server_process,
        "GET",
        f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={LONG}",
    )
    assert (status, content_type) == (414, "application/json"), body[:300]
    assert set(json.loads(body)) == {"error_code", "message", "request_id"}
    status, content_type, body = live_request(
        live_server_process, "GET", f"/api/v1/resolve?uri={LONG}"
    )
    assert (status, content_type) == (414, "application/json"), body[:300]
    assert set(json.loads(body)["error"]) == {"code", "message", "details", "request_id"}
    status, content_type, _ = live_request(live_server_process, "GET", f"/experiments/?q={LONG}")
    assert (status, content_type) == (414, "text/plain")
    # Under the limit but over gunicorn's default request line (4094): Custody answers.
    status, content_type, body = live_request(
        live_server_process,
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=" + "y" * 6000,
    )
    assert status in (400, 404) and content_type == "application/json", (status, body[:300])


def test_live_chunked_artifact_uploads_still_stream(live_server_process):
    """Artifact PUTs read their chunked bodies themselves (the MLflow client sends empty
    files that way); the JSON body reading leaves them alone."""
    server = live_server_process
    json_headers = {"Content-Type": "application/json"}
    name = f"chunked-artifacts-{uuid.uuid4().hex[:8]}"
    _, _, body = live_request(
        server, "POST", f"{MLFLOW}/experiments/create", json.dumps({"name": name}), json_headers
    )
    experiment_id = json.loads(body)["experiment_id"]
    run = {"experiment_id": experiment_id, "start_time": 1}
    _, _, body = live_request(
        server, "POST", f"{MLFLOW}/runs/create", json.dumps(run), json_headers
    )
    run_id = json.loads(body)["run"]["info"]["run_id"]
    prefix = f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
    for file_name, parts in [("empty.txt", []), ("two-chunks.bin", [b"first ", b"second"])]:
        status, _, body = live_request(server, "PUT", f"{prefix}/{file_name}", iter(parts))
        assert status == 200, body
        status, _, body = live_request(server, "GET", f"{prefix}/{file_name}")
        assert (status, body) == (200, b"".join(parts))

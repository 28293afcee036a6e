"""A browser remembers the HTTP Basic credentials typed in answer to Custody's challenge and
sends them with every later request to Custody, from any page, as it sends cookies. A page on
another site could then post a form to the API in the user's name (approve a transition,
create a token). Every API route that takes a write refuses one a browser says comes from
another site (`Origin`, `Sec-Fetch-Site`), whatever the credentials; the MLflow client and
scripts send neither header and are unaffected. The routes come from the URL table, so a new
route is tried too."""

from __future__ import annotations

import base64

import pytest
from django.test import Client
from django.urls import get_resolver

from accounts import services as accounts
from accounts.middleware import API_PREFIXES
from accounts.models import ApiToken
from audit.models import AuditEvent
from tests.core.test_route_inventory import HTTP_METHODS, _concrete, walk

pytestmark = [pytest.mark.django_db, pytest.mark.access]

REFUSED = "from a page on another site"
# What browsers send with a form posted from another site's page, one signal at a time.
CROSS_SITE = {
    "another origin": {"HTTP_ORIGIN": "https://attacker.example"},
    "an opaque origin": {"HTTP_ORIGIN": "null"},
    "Sec-Fetch-Site only": {"HTTP_SEC_FETCH_SITE": "cross-site"},
    "a sibling subdomain": {"HTTP_SEC_FETCH_SITE": "same-site"},
}


def _api_writes() -> list[tuple[str, str]]:
    """(method, path) of every write an API route takes, from the URL table."""
    writes = []
    for route, callback in walk(get_resolver().url_patterns):
        path = _concrete(route)
        if not path.startswith(API_PREFIXES):
            continue
        mlflow_route = getattr(callback, "mlflow_route", None)
        if mlflow_route is not None:
            methods = list(mlflow_route.methods)
        else:
            view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            methods = [m.upper() for m in HTTP_METHODS if hasattr(view_class, m)]
        writes += [(method, path) for method in methods if method not in ("GET", "HEAD")]
    return writes


@pytest.fixture
def credentials():
    admin = accounts.user_create(username="root", role="admin", password="root-pw-12345")
    return {
        "basic": "Basic " + base64.b64encode(b"root:root-pw-12345").decode(),
        "bearer": f"Bearer {accounts.token_create(user=admin, name='t')[1]}",
    }


def test_every_api_write_from_another_sites_page_is_refused_and_recorded(credentials):
    writes = _api_writes()
    assert len(writes) > 60, writes  # the MLflow routes and /api/v1's
    changes_before = AuditEvent.objects.exclude(outcome="denied").count()
    denials_before = AuditEvent.objects.filter(action="request.cross_site.denied").count()
    signals = list(CROSS_SITE.items())
    schemes = list(credentials.items())
    for i, (method, path) in enumerate(writes):
        # Each route once, the signals and schemes taken in turn (every pair many times).
        signal, headers = signals[i % len(signals)]
        scheme, authorization = schemes[(i // len(signals)) % len(schemes)]
        client = Client(HTTP_AUTHORIZATION=authorization, **headers)
        body = b'{"name": "made-cross-site", "experiment_id": "0"}'
        response = client.generic(method, path, body, "application/json")
        where = (method, path, scheme, signal, response.status_code)
        assert response.status_code == 403, where
        assert REFUSED in response.content.decode(), where
    # Nothing was written; each refusal is in the trail, with who was refused.
    assert AuditEvent.objects.exclude(outcome="denied").count() == changes_before
    denied = AuditEvent.objects.filter(action="request.cross_site.denied")
    assert denied.count() - denials_before == len(writes)
    assert set(denied.values_list("actor_username", flat=True)) == {"root"}


def test_the_same_writes_from_custodys_own_origin_or_no_browser_pass_that_check(credentials):
    same_origin = {
        "no browser headers (the MLflow client)": {},
        "Custody's own origin": {"HTTP_ORIGIN": "http://testserver"},
        "same-origin": {"HTTP_SEC_FETCH_SITE": "same-origin"},
        "typed by the user": {"HTTP_SEC_FETCH_SITE": "none"},
    }
    signals = list(same_origin.items())
    for i, (method, path) in enumerate(_api_writes()):
        signal, headers = signals[i % len(signals)]
        client = Client(HTTP_AUTHORIZATION=credentials["basic"], **headers)
        response = client.generic(method, path, b"{}", "application/json")
        assert REFUSED not in response.content.decode(), (method, path, signal)


def test_a_form_posted_from_another_site_creates_no_token(credentials):
    """The attack as a browser makes it: a urlencoded form, the remembered Basic header."""
    form = Client(
        HTTP_AUTHORIZATION=credentials["basic"],
        HTTP_ORIGIN="https://attacker.example",
        HTTP_SEC_FETCH_SITE="cross-site",
    )
    response = form.post(
        "/api/v1/tokens", "name=planted", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert REFUSED in response.json()["error"]["message"]
    assert not ApiToken.objects.filter(name="planted").exists()
    # The same form from Custody's own page (a same-origin script) is taken.
    own = Client(HTTP_AUTHORIZATION=credentials["basic"], HTTP_ORIGIN="http://testserver")
    taken = own.post(
        "/api/v1/tokens", "name=mine", content_type="application/x-www-form-urlencoded"
    )
    assert taken.status_code == 201
    assert ApiToken.objects.filter(name="mine").exists()


def test_trusted_origins_may_write(credentials, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example"]
    client = Client(HTTP_AUTHORIZATION=credentials["bearer"], HTTP_ORIGIN="https://portal.example")
    response = client.post(
        "/api/2.0/mlflow/experiments/create", {"name": "from-portal"}, "application/json"
    )
    assert response.status_code == 200

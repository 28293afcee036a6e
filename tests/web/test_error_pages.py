"""Error pages a person meets are styled pages with the site's navigation (API paths keep
their JSON errors), and every page names the favicon."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_unknown_page_is_a_styled_404_with_navigation(scientist):
    client = Client()
    client.force_login(scientist)
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404 and "Page not found" in html
    assert 'href="/experiments/"' in html and "favicon.svg" in html and "alice" in html
    api = client.get("/api/2.0/mlflow/no-such-endpoint")
    assert api.status_code == 404 and api.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_server_error_page_is_styled(rf):
    from core.views import server_error

    page = server_error(rf.get("/experiments/"))
    assert page.status_code == 500 and b"Something went wrong" in page.content
    assert b'href="/experiments/"' in page.content
    api = server_error(rf.get("/api/2.0/mlflow/runs/get"))
    assert api.status_code == 500 and b"INTERNAL_ERROR" in api.content


def test_forbidden_page_is_styled(rf):
    from core.views import forbidden

    request = rf.get("/experiments/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    page = forbidden(request)
    assert page.status_code == 403 and b"Not allowed" in page.content

"""Property-based requests against every /api/v1 operation in the OpenAPI schema: whatever
the input, the answer is never a 5xx (reference/security.md §4)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from accounts import services

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(SCHEMA)
schema.app = get_wsgi_application()


@pytest.fixture(autouse=True)
def keep_test_connection():
    # Calling the WSGI app directly fires request_started/finished, whose handler closes the
    # database connection; Django's test client disconnects it the same way.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_header(db):
    user = services.user_create(username="fuzz-admin", role="admin")
    return {"Authorization": f"Bearer {services.token_create(user=user, name='fuzz')[1]}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, admin_header):
    response = case.call(headers=admin_header)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])

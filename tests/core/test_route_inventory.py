"""Every route in the URL table declares an access rule, and no protected route answers an
anonymous caller. A new route without a rule fails here, so it cannot ship unprotected."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver

from core import access
from core.drf import view_rule
from core.mlflow_api import ExactRoutesFirst

pytestmark = [pytest.mark.django_db, pytest.mark.access]

# Routes that are public on purpose, with the reason.
PUBLIC_ROUTES = {
    "health": "liveness probe for load balancers",
    "ready": "readiness probe: database, artifact store, broker (no details, core.readiness)",
    "version": "server version, as MLflow serves it",
}
# Routes for machines that prove themselves with a shared secret instead of a user.
SCRAPE_TOKEN_ROUTES = {
    "metrics": "Prometheus scrape: Bearer CUSTODY_METRICS_TOKEN, off without it "
    "(core.observability.metrics; tests/core/test_observability.py)",
}
SCRAPE_TOKEN = "scrape-token"
# drf-spectacular views are guarded by SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"].
SPECTACULAR_VIEWS = {"SpectacularAPIView", "SpectacularSwaggerView"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def walk(resolvers, prefix=""):
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def classify(route: str, callback) -> list[str]:
    """The declared rules of one route, or [] when it declares none."""
    if route in PUBLIC_ROUTES:
        return [access.PUBLIC]
    if route in SCRAPE_TOKEN_ROUTES:
        return [SCRAPE_TOKEN]
    if route.startswith("admin/"):
        return ["admin-site"]  # Django's admin: staff sessions only, checked by the admin itself
    mlflow_route = getattr(callback, "mlflow_route", None)
    if mlflow_route is not None:
        return [rule for _, rule in mlflow_route.methods.values()]
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None and view_class.__name__ in SPECTACULAR_VIEWS:
        return [access.AUTHENTICATED]
    if view_class is not None and hasattr(view_class, "access_rule"):
        methods = [m for m in HTTP_METHODS if hasattr(view_class, m)]
        return [view_rule(view_class, m.upper()) for m in methods]
    ui_rule = getattr(callback, "access_rule", None)
    if ui_rule is not None:
        return [ui_rule]
    return []


def test_every_route_declares_a_known_rule():
    undeclared, unknown = [], []
    for route, callback in walk(get_resolver().url_patterns):
        rules = classify(route, callback)
        if not rules or None in rules:
            undeclared.append(route)
        unknown += [
            (route, r)
            for r in rules
            if r not in access.RULES and r not in ("admin-site", SCRAPE_TOKEN)
        ]
    assert not undeclared, f"routes without an access rule: {undeclared}"
    assert not unknown, f"routes with unknown rules: {unknown}"


def _concrete(route: str) -> str:
    route = re.sub(r"<path:[^>]+>", "1/x/artifacts/f.txt", route)
    route = re.sub(r"<int:[^>]+>", "1", route)
    return "/" + re.sub(r"<(str:)?[^>]+>", "x", route).lstrip("^").rstrip("$")


def test_anonymous_callers_are_refused_everywhere_but_public_routes(settings):
    settings.CUSTODY_METRICS_TOKEN = "a-scrape-token"  # with metrics on, they need the token
    client = Client()
    checked = 0
    for route, callback in walk(get_resolver().url_patterns):
        rules = classify(route, callback)
        if access.PUBLIC in rules or route.startswith("admin/"):
            continue
        mlflow_route = getattr(callback, "mlflow_route", None)
        methods = list(mlflow_route.methods) if mlflow_route else ["GET"]
        for method in methods:
            response = client.generic(method, _concrete(route), b"{}", "application/json")
            if getattr(callback, "access_rule", None) is not None and not mlflow_route:
                # Pages send people to the sign-in page instead.
                assert response.status_code == 302, (method, route, response.status_code)
                assert response["Location"].startswith("/login/"), route
            else:
                assert response.status_code in (401, 403), (method, route, response.status_code)
            checked += 1
    assert checked > 40


def test_admin_requires_a_staff_session():
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_mlflow_routes_looked_up_directly_resolve_as_djangos_walk_would():
    """`ExactRoutesFirst` finds a route without converters by a dict look-up; every path of
    the URL table must resolve to the view, route and arguments Django's walk through the
    patterns gives (the walk is the plain `URLResolver.resolve` of the same include)."""
    shortcuts = [
        entry for entry in get_resolver().url_patterns if isinstance(entry, ExactRoutesFirst)
    ]
    compared = 0
    for include in shortcuts:
        for route, _ in walk(include.url_patterns, str(include.pattern)):
            path = _concrete(route)[1:]
            looked_up, walked = include.resolve(path), URLResolver.resolve(include, path)
            assert (looked_up.func, looked_up.route, looked_up.kwargs, looked_up.url_name) == (
                walked.func,
                walked.route,
                walked.kwargs,
                walked.url_name,
            ), path
            assert looked_up.app_names == walked.app_names, path
            assert looked_up.namespaces == walked.namespaces, path
            compared += 1
    assert len(shortcuts) >= 6 and compared > 150
    # A path that matches nothing still answers Django's 404, with what was tried.
    with pytest.raises(Resolver404):
        shortcuts[0].resolve(str(shortcuts[0].pattern) + "runs/no-such-route")

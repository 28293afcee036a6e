"""Page views go through the same access decision as the APIs: each declares its rule."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from core import access, refusals
from core.errors import ApplicationError, ResourceDoesNotExist


def page(rule: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, **kwargs):
            if rule != access.PUBLIC and not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                # The resolver rewrites kwargs' identifiers to their canonical form.
                access.authorize(request, rule, kwargs)
                return view(request, **kwargs)
            except ResourceDoesNotExist as exc:
                return render(
                    request,
                    "web/error.html",
                    {"title": "Not found", "message": exc.message},
                    status=404,
                )
            except ApplicationError as exc:
                kind = refusals.kind(exc)
                return render(
                    request,
                    "web/error.html",
                    {"title": refusals.TITLES[kind], "message": exc.message, "kind": kind},
                    status=exc.status if exc.status < 500 else 400,
                )

        wrapper.access_rule = rule  # read by the route inventory test
        return wrapper

    return decorator

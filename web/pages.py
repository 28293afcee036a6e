"""Page views go through the same access decision as the APIs: each declares its rule."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

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
                # The resolver rewrites kwargs' identifiers to their canonical form; the
                # object it decided on is the view's to reuse (`decided`).
                request.custody_decided = access.authorize(request, rule, kwargs)
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


def decided(request, kind: type, fallback: Callable[[], Any]) -> Any:
    """The object the page's access decision was taken on when it is of this kind, else
    what `fallback` loads."""
    found = getattr(request, "custody_decided", None)
    return found if isinstance(found, kind) else fallback()

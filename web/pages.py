"""Page views go through the same access decision as the APIs: each declares its rule."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import RFC3986_SUBDELIMS

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


class Links:
    """The URLs of one route for many values of its last argument, reversed once: a page of
    300 versions reversed 600 links, a third of its time (`reverse` resolves the pattern and
    its converters on every call). Quoted as `reverse` quotes them; a value `reverse` would
    refuse (a slash, for a `str` segment) is left to `reverse`, which refuses it."""

    _MARKER = "0links0"

    def __init__(self, route: str, *fixed: Any):
        self._route, self._fixed = route, fixed
        parts = reverse(route, args=[*fixed, self._MARKER]).split(self._MARKER)
        self._parts = parts if len(parts) == 2 else None

    def __call__(self, value: Any) -> str:
        text = str(value)
        if self._parts is None or "/" in text:
            return reverse(self._route, args=[*self._fixed, value])
        return f"{self._parts[0]}{quote(text, safe=RFC3986_SUBDELIMS + '~:@')}{self._parts[1]}"

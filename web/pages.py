"""Page views go through the same access decision as the APIs: each declares its rule."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from core import access, refusals
from core.errors import ApplicationError, ResourceDoesNotExist

# Security denials, rule refusals and input mistakes read differently (core.refusals).
TITLES = {
    refusals.DENIED: "Not allowed",
    refusals.REFUSED: "Not yet: the model's policy is not met",
    "mistake": "Cannot do that",
}


def show_error(request, exc: ApplicationError) -> None:
    """An error shown as a message on the page the user returns to."""
    kind = refusals.kind(exc)
    level = messages.WARNING if kind == refusals.REFUSED else messages.ERROR
    messages.add_message(request, level, f"{TITLES[kind]}. {exc.message}")


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
                    {"title": TITLES[kind], "message": exc.message, "kind": kind},
                    status=exc.status if exc.status < 500 else 400,
                )

        wrapper.access_rule = rule  # read by the route inventory test
        return wrapper

    return decorator

"""Sign-in forms for the web UI and the admin, throttled like API basic auth."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from accounts.throttle import TooManyAttempts, check_not_throttled, record_failed_login


class ThrottledLoginMixin:
    """Refuses a locked-out username/address before checking the password (so the right
    password tells a guesser nothing while locked), and counts a failed authentication. A
    right password refused by confirm_login_allowed (the admin's staff check) is not a
    failed guess and is not counted."""

    retry_after: int | None = None

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        client_ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        try:
            check_not_throttled(username, client_ip)
        except TooManyAttempts as exc:
            self.retry_after = exc.retry_after
            raise forms.ValidationError(exc.message, code="throttled") from None
        try:
            return super().clean()
        except forms.ValidationError:
            if self.get_user() is None:
                record_failed_login(username, client_ip)
            raise


class ThrottledLoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class ThrottledAdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


def with_throttle_status(response):
    """A sign-in page refused by the throttle answers 429 with Retry-After, not 200."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    retry_after = getattr(form, "retry_after", None)
    if retry_after:
        response.status_code = 429
        response["Retry-After"] = str(retry_after)
    return response

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.authentication import check_not_throttled, record_failed_login
from core.errors import ApplicationError


class ThrottledLoginForm(AuthenticationForm):
    """The admin and UI sign-in share the API's failed-login throttle."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        client_ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        try:
            check_not_throttled(username, client_ip)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code="throttled") from None
        try:
            return super().clean()
        except forms.ValidationError:
            record_failed_login(username, client_ip)
            raise


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name")
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        label="Expires in (days)",
        help_text="Leave empty for a token that does not expire.",
    )

from __future__ import annotations

from django import forms

from accounts.forms import ThrottledLoginForm

__all__ = ["ThrottledLoginForm", "TokenForm"]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name")
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        label="Expires in (days)",
        help_text="Leave empty for a token that does not expire.",
    )

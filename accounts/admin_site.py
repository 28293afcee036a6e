"""The admin site: Django's own, with the sign-in throttled like every other password
sign-in (installed through accounts.apps.CustodyAdminConfig)."""

from __future__ import annotations

from django.contrib import admin

from accounts.forms import ThrottledAdminLoginForm, with_throttle_status


class CustodyAdminSite(admin.AdminSite):
    login_form = ThrottledAdminLoginForm

    def login(self, request, extra_context=None):
        return with_throttle_status(super().login(request, extra_context))

"""Installs CustodyAdminSite as `admin.site` (Django's documented way to replace the default
admin site; every `admin.site.register` keeps working). Kept apart from accounts.apps, which
may declare only its own AppConfig."""

from django.contrib.admin.apps import AdminConfig


class CustodyAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.CustodyAdminSite"

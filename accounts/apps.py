from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Identity and access"

    def ready(self) -> None:
        from accounts import schema  # noqa: F401  (registers the OpenAPI security schemes)

        _watch_identity()


def _watch_identity() -> None:
    """Whatever changes who a caller is or which roles they hold gives the `access` cache
    family a new version in the same transaction (core.process_cache), whichever path saves
    it: services, the admin, management commands."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.models import ApiToken
    from core import process_cache

    User = get_user_model()
    family = process_cache.ACCESS
    process_cache.bump_on_change(
        User,
        family,
        fields={"username", "password", "is_active", "is_staff", "is_superuser"},
    )
    process_cache.bump_on_change(Group, family)
    process_cache.bump_on_m2m_change(User.groups.through, family)
    # A new token cannot be in anyone's cache yet; a revoke or an expiry change can.
    process_cache.bump_on_change(
        ApiToken, family, fields={"revoked_at", "expires_at", "user"}, on_create=False
    )

from core import access


def navigation(request) -> dict:
    """Which navigation entries the signed-in user gets (pages refuse the others anyway)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"show_audit_nav": access.is_admin(user) or access.is_compliance(user)}

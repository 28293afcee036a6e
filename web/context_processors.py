from functools import partial

from core import access


def navigation(request) -> dict:
    """Which navigation entries the signed-in user gets (pages refuse the others anyway), and
    for reviewers how many requests wait for them (counted only when the nav is drawn)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context = {"show_audit_nav": access.is_admin(user) or access.is_compliance(user)}
    if access.is_reviewer(user):
        from governance.selectors.requests import pending_count

        context["pending_reviews"] = partial(pending_count, user)
    return context

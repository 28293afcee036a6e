"""DRF's side of the central access decision: every /api/v1 view declares `access_rule`
(one rule, or one per HTTP method) and this permission class hands it to
`core.access.authorize`. A view without a rule is refused (fail closed)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import BasePermission

from core import access
from core.errors import PermissionDenied


def view_rule(view, method: str) -> str | None:
    rule = getattr(view, "access_rule", None)
    if isinstance(rule, dict):
        return rule.get(method)
    return rule


class RuleAccess(BasePermission):
    def has_permission(self, request, view) -> bool:
        rule = view_rule(view, request.method)
        if rule is None:
            if request.method == "OPTIONS":
                rule = access.AUTHENTICATED
            else:
                raise PermissionDenied("This endpoint declares no access rule; refusing.")
        # view.kwargs is the dict DRF hands the handler: the resolver rewrites its
        # identifiers to their canonical form there.
        access.authorize(request._request, rule, view.kwargs)
        return True


class GrantSerializer(serializers.Serializer):
    user = serializers.CharField(required=False)
    group = serializers.CharField(required=False, help_text="a role or group name")
    level = serializers.ChoiceField(choices=list(access.LEVELS))


class GrantsSerializer(serializers.Serializer):
    """Grants on an experiment or a registered model."""

    grants = GrantSerializer(many=True)

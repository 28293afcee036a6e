"""DRF's side of the central access decision: every /api/v1 view declares `access_rule`
(one rule, or one per HTTP method) and this permission class hands it to
`core.access.authorize`. A view without a rule is refused (fail closed)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter
from rest_framework import parsers, serializers
from rest_framework.permissions import BasePermission

from core import access
from core.errors import PayloadTooLarge, PermissionDenied
from core.mlflow_api import parse_json_bytes


def view_rule(view, method: str) -> str | None:
    rule = getattr(view, "access_rule", None)
    if isinstance(rule, dict):
        return rule.get(method)
    return rule


class JSONParser(parsers.JSONParser):
    """/api/v1 reads JSON exactly as the MLflow routes do (`parse_json_bytes`): duplicate
    keys, bare NaN and nesting too deep to parse are 400s, never a RecursionError. The body
    is capped like `request.body` (DATA_UPLOAD_MAX_MEMORY_SIZE), which DRF's own parser,
    reading the stream, would not enforce."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge("Request body is larger than this server accepts.")
        return parse_json_bytes(raw)


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


class GrantChangeSerializer(serializers.Serializer):
    """What adding one grant answers: the grants now, and what happened to this one."""

    grants = GrantSerializer(many=True)
    outcome = serializers.ChoiceField(choices=["added", "changed", "unchanged"])


# DELETE …/permissions?user=… (or ?group=…): the one grant to remove.
GRANT_REMOVE_PARAMETERS = [
    OpenApiParameter("user", str, description="the user whose grant to remove"),
    OpenApiParameter("group", str, description="or the group (role, team) whose grant to remove"),
]


class GrantsSerializer(serializers.Serializer):
    """Grants on an experiment or a registered model."""

    grants = GrantSerializer(many=True)

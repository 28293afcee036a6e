"""/api/v1 lineage: the subgraph around a node, impact of a dataset, version diffs, and
declared links."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import services as audit
from core import access
from core.errors import InvalidParameterValue, ResourceAlreadyExists
from lineage import graph
from lineage.diff import version_diff
from lineage.models import LineageLink
from registry import selectors as registry_selectors


def _depth(raw) -> int:
    try:
        return int(raw) if raw not in (None, "") else 3
    except ValueError:
        raise InvalidParameterValue(f"depth must be a whole number, not {raw!r}.") from None


class LineageApi(APIView):
    access_rule = access.AUTHENTICATED  # nodes the caller may not read are redacted

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "node",
                str,
                required=True,
                description="dataset:orders@v2.1, commit:b7d9e4, run:<id>, "
                "logged-model:m-…, version:fraud/3, deployment:/predict",
            ),
            OpenApiParameter("direction", str, enum=["up", "down", "both"]),
            OpenApiParameter("depth", int, description=f"hops, 0-{graph.MAX_DEPTH} (default 3)"),
        ],
        responses=OpenApiTypes.OBJECT,
        summary="The lineage subgraph within N hops of a node",
    )
    def get(self, request):
        params = request.query_params
        result = graph.traverse(
            params.get("node", ""),
            params.get("direction", "both"),
            _depth(params.get("depth")),
            request.user,
        )
        return Response(result.as_dict())


class ImpactApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(
        parameters=[
            OpenApiParameter("dataset", str, required=True),
            OpenApiParameter(
                "version", str, description="a version (v2.1) or digest; all when absent"
            ),
        ],
        responses=OpenApiTypes.OBJECT,
        summary="Every run, model version (with stage) and deployment downstream of a dataset",
    )
    def get(self, request):
        params = request.query_params
        return Response(
            graph.impact(params.get("dataset", ""), params.get("version") or None, request.user)
        )


class VersionDiffApi(APIView):
    access_rule = access.MODEL_READ

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="What differs between two versions: datasets, commit, params, metrics, tags, "
        "model card, approvals",
    )
    def get(self, request, name: str, a: str, b: str):
        va = registry_selectors.model_version_by_name(name, a)
        vb = registry_selectors.model_version_by_name(name, b)
        return Response(version_diff(va, vb))


class LinkInput(serializers.Serializer):
    source = serializers.CharField(max_length=600)
    target = serializers.CharField(max_length=600)
    kind = serializers.RegexField(r"^[a-z][a-z0-9_\-]{0,63}$", help_text="e.g. derived_from")


class LinksApi(APIView):
    access_rule = access.AUTHENTICATED  # and EDIT on the run or model at either end

    @extend_schema(
        request=LinkInput,
        responses={201: OpenApiTypes.OBJECT},
        summary="Declare an edge a client cannot send (e.g. dataset:raw@v1 -> dataset:clean@v1)",
    )
    def post(self, request):
        data = LinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        ends = [graph.parse_node(values["source"]), graph.parse_node(values["target"])]
        for kind, key in ends:
            if kind == "run":
                access.authorize(request._request, access.RUN_EDIT, {"run_id": key})
            elif kind == "version":
                access.authorize(
                    request._request, access.MODEL_EDIT, {"name": key.rpartition("/")[0]}
                )
        try:
            with transaction.atomic():
                link = LineageLink.objects.create(
                    source=values["source"],
                    target=values["target"],
                    kind=values["kind"],
                    created_by=request.user,
                    created_at=timezone.now(),
                )
                audit.record(
                    action="lineage.link.create",
                    object_type="lineage_link",
                    object_id=link.pk,
                    object_name=f"{link.source} -> {link.target}",
                    after={"source": link.source, "target": link.target, "kind": link.kind},
                )
        except IntegrityError:
            raise ResourceAlreadyExists("This link is already declared.") from None
        return Response(
            {"id": link.pk, "source": link.source, "target": link.target, "kind": link.kind},
            status=status.HTTP_201_CREATED,
        )

"""/api/v1 lineage: the subgraph around a node, impact of a dataset, version diffs, and
declared links."""

from __future__ import annotations

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from lineage import graph, services
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
        return Response(version_diff(va, vb, request.user))


class LinkInput(serializers.Serializer):
    source = serializers.CharField(max_length=600)
    target = serializers.CharField(max_length=600)
    kind = serializers.RegexField(r"^[a-z][a-z0-9_\-]{0,63}$", help_text="e.g. derived_from")


MAX_LINKS = 1000


def _link_payload(link: LineageLink) -> dict:
    return {
        "id": link.pk,
        "source": link.source,
        "target": link.target,
        "kind": link.kind,
        "created_by": link.created_by.username,
        "created_at": link.created_at.isoformat(),
    }


class LinksApi(APIView):
    # GET: links whose ends the caller may all see. POST: EDIT on the run, logged model,
    # version or endpoint at either end; between datasets and commits, any role that writes.
    access_rule = access.AUTHENTICATED

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "node", str, description="only links from or to this node, e.g. dataset:orders@v2.1"
            ),
            OpenApiParameter(
                "after_id", int, description="the next page: links after this id (next_after_id)"
            ),
        ],
        responses=OpenApiTypes.OBJECT,
        summary="Declared links the caller may see (both ends visible), oldest first, 1,000 a "
        "page (next_after_id when there are more)",
        operation_id="lineage_links_list",
    )
    def get(self, request):
        links = LineageLink.objects.select_related("created_by").order_by("pk")
        node = request.query_params.get("node")
        if node:
            kind, key = graph.parse_node(node)
            node = f"{kind}:{key}"
            links = links.filter(Q(source=node) | Q(target=node))
        after = request.query_params.get("after_id") or "0"
        if not after.isascii() or not after.isdigit() or len(after) > 18:
            raise InvalidParameterValue(f"after_id must be a link id, not {after[:30]!r}.")
        # Hidden links are dropped before the page is cut, so a page is full when it can be.
        page: list[LineageLink] = []
        more, cursor = True, int(after)
        while more and len(page) <= MAX_LINKS:
            batch = list(links.filter(pk__gt=cursor)[: MAX_LINKS + 1])
            more = len(batch) > MAX_LINKS
            if not batch:
                break
            cursor = batch[-1].pk
            shown = graph.visible({e for r in batch for e in (r.source, r.target)}, request.user)
            page += [r for r in batch if {r.source, r.target} <= shown]
        truncated = len(page) > MAX_LINKS or (more and len(page) == MAX_LINKS)
        page = page[:MAX_LINKS]
        return Response(
            {
                "links": [_link_payload(r) for r in page],
                "truncated": truncated,
                "next_after_id": page[-1].pk if truncated and page else None,
            }
        )

    @extend_schema(
        request=LinkInput,
        responses={201: OpenApiTypes.OBJECT},
        summary="Declare an edge a client cannot send (e.g. dataset:raw@v1 -> dataset:clean@v1)",
        operation_id="lineage_links_create",
    )
    def post(self, request):
        data = LinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        ends = [graph.parse_node(values["source"]), graph.parse_node(values["target"])]
        services.authorize_ends(request._request, ends)
        link = services.link_create(
            source=f"{ends[0][0]}:{ends[0][1]}",
            target=f"{ends[1][0]}:{ends[1][1]}",
            kind=values["kind"],
            user=request.user,
        )
        return Response(_link_payload(link), status=status.HTTP_201_CREATED)


class LinkApi(APIView):
    # The link's creator, an administrator, or EDIT on an object at either end (checked in
    # services.link_delete); links with an end the caller may not see answer 404.
    access_rule = access.AUTHENTICATED

    @extend_schema(
        responses={204: None},
        summary="Remove a declared link (audited lineage.link.delete)",
        operation_id="lineage_links_delete",
    )
    def delete(self, request, link_id: int):
        link = LineageLink.objects.select_related("created_by").filter(pk=link_id).first()
        if link is None or graph.visible({link.source, link.target}, request.user) != {
            link.source,
            link.target,
        }:
            raise ResourceDoesNotExist(f"No declared link with id {link_id}.")
        services.link_delete(link=link, user=request.user, path=request.path)
        return Response(status=status.HTTP_204_NO_CONTENT)

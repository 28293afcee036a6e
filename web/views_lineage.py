"""The lineage page: any node's graph drawn as server-rendered SVG, each node a link that
traces its own inputs; the nodes and edges listed below for screen readers."""

from __future__ import annotations

from django.shortcuts import render
from django.utils.safestring import mark_safe

from core import access
from core.errors import ApplicationError
from lineage import graph as lineage
from lineage.svg import render as render_svg
from web.pages import page

# Clicking a node traces its inputs; data and code have none, so they trace what used them.
DEFAULT_DIRECTION = {"dataset": "down", "commit": "down"}


@page(access.AUTHENTICATED)
def lineage_page(request):
    node = request.GET.get("node", "").strip()
    context: dict = {"nav": "lineage", "node": node, "graph": None, "error": None}
    if node:
        try:
            kind, _ = lineage.parse_node(node)
            direction = request.GET.get("direction") or DEFAULT_DIRECTION.get(kind, "up")
            depth = int(request.GET.get("depth") or 6)
            result = lineage.traverse(node, direction, depth, request.user).as_dict()
            context.update(
                graph=result,
                svg=mark_safe(render_svg(result)),  # noqa: S308 - every value is escaped in render()
                direction=direction,
                depth=depth,
                labels={n["id"]: n.get("label", n["id"]) for n in result["nodes"]},
            )
        except ValueError:
            context["error"] = "depth must be a whole number."
        except ApplicationError as exc:
            context["error"] = exc.message
    return render(request, "web/lineage.html", context)

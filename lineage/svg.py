"""Server-rendered SVG of a lineage graph: a layered layout in columns by node kind (data and
code, runs, logged models, versions, endpoints), each node a link that re-centres the page on
it. No JavaScript and nothing from a CDN."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

COLUMN = {"dataset": 0, "commit": 0, "run": 1, "logged-model": 2, "version": 3, "deployment": 4}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 210, 46, 90, 18, 20
FILL = {
    "dataset": "#e6efff",
    "commit": "#f1e8fd",
    "run": "#fff4d6",
    "logged-model": "#fdebd3",
    "version": "#e3f4e8",
    "deployment": "#fde8e7",
}


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(graph: dict[str, Any], link_base: str = "/lineage/?node=") -> str:
    columns: dict[int, list[dict[str, Any]]] = {}
    by_id = {node["id"]: node for node in graph["nodes"]}
    for node in sorted(graph["nodes"], key=lambda n: (n["kind"] != "dataset", n["id"])):
        columns.setdefault(COLUMN.get(node["kind"], 1), []).append(node)
    used = sorted(columns)
    position: dict[str, tuple[int, int]] = {}
    for index, column in enumerate(used):
        for row, node in enumerate(columns[column]):
            position[node["id"]] = (PAD + index * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + max(len(used), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(c) for c in columns.values()), default=1) * (NODE_H + GAP_Y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Lineage graph; each node links to its own lineage">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#56606e"/></marker></defs>',
    ]
    for edge in graph["edges"]:
        if edge["from"] not in position or edge["to"] not in position:
            continue
        x1, y1 = position[edge["from"]]
        x2, y2 = position[edge["to"]]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        if tx <= sx:  # same column (declared links): loop around the right side
            tx, ty = x2 + NODE_W, y2 + NODE_H / 2
        mid = (sx + tx) / 2
        parts.append(
            f'<path class="edge" d="M {sx} {sy} C {mid} {sy}, {mid} {ty}, {tx} {ty}" '
            'fill="none" stroke="#8a94a3" stroke-width="1.5" marker-end="url(#arrow)">'
            f"<title>{escape(edge['from'])} → {escape(edge['to'])} ({escape(edge['kind'])})</title>"
            "</path>"
        )
        parts.append(
            f'<text x="{mid}" y="{(sy + ty) / 2 - 4}" font-size="10" fill="#56606e" '
            f'text-anchor="middle">{escape(edge["kind"])}</text>'
        )
    for node_id, (x, y) in position.items():
        node = by_id[node_id]
        redacted = node.get("redacted")
        fill = "#eceff3" if redacted else FILL.get(node["kind"], "#fff")
        stroke = "#1f5fae" if node.get("root") else "#9aa4b2"
        detail = node.get("stage") or node.get("serving") or node.get("status") or ""
        box = (
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{3 if node.get("root") else 1}"/>'
            f'<text x="{x + 10}" y="{y + 18}" font-size="11" fill="#56606e">{escape(node["kind"])}'
            f"{' · ' + escape(_short(str(detail), 20)) if detail else ''}</text>"
            f'<text x="{x + 10}" y="{y + 36}" font-size="13" fill="#1b2330" font-weight="600">'
            f"{escape(_short(str(node.get('label', node_id))))}</text>"
        )
        title = f"<title>{escape(node_id)}</title>"
        if redacted:
            parts.append(f'<g class="node redacted" data-node="{escape(node_id)}">{title}{box}</g>')
        else:
            href = escape(link_base + quote(node_id, safe=":/@"))
            parts.append(
                f'<a class="node" href="{href}" data-node="{escape(node_id)}">{title}{box}</a>'
            )
    parts.append("</svg>")
    return "".join(parts)

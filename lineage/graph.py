"""The lineage graph, read from what clients already send: datasets (log_input, and the
`dataset_version` tag or param), code commits (tags), runs, logged models, model versions
and deployments, plus declared links. Edges point downstream (input -> output).

Traversal is breadth-first and set-based: each hop runs a fixed number of queries for the
whole frontier, never one per node (one more per CHUNK ids when a frontier is larger, so no
IN list outgrows a database's limit on bound variables). Nodes the caller may not read are
redacted."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Lower, Trim

from core import access as access_rules
from core import grants as grant_helpers
from core import identifiers
from core.errors import InvalidParameterValue
from lineage.models import LineageLink
from registry import resolution
from registry.models import Deployment, ModelVersion, RegisteredModel, RegisteredModelPermission
from tracking.models import (
    LatestMetric,
    LoggedModel,
    Param,
    Run,
    RunInput,
    RunModelInput,
    RunOutput,
    RunTag,
)
from tracking.permissions import unreadable_experiment_ids

KINDS = ("dataset", "commit", "run", "logged-model", "version", "deployment")
MAX_DEPTH = 10
# Kinds whose nodes the caller may be unable to read (datasets and commits are names only).
REDACTABLE = ("run", "logged-model", "version", "deployment")
MAX_NODES = 2000
CHUNK = 5000  # ids per IN list; SQLite allows 32,766 bound variables per statement
LIKE_CHUNK = 200  # OR-ed LIKE terms per query (SQLite nests ORs; its depth limit is 1,000)
COMMIT_TAGS = ("git_commit", "mlflow.source.git.commit")
DATASET_KEY = "dataset_version"
# "orders_v2.1" -> dataset "orders", version "v2.1"; several joined by "+".
# Split at the last "_v<digit>": events_v2_clean_v1.3 -> events_v2_clean, v1.3.
_TOKEN = re.compile(r"^(?P<name>.+)_(?P<version>v\d[\w.\-]*)$", re.DOTALL)
_ID = re.compile(r"^(?P<kind>[a-z\-]+):(?P<key>.+)$", re.DOTALL)  # stored names may hold \n
METRICS_PER_RUN = 10
MIN_COMMIT = 4  # characters of a commit prefix given by a caller
MAX_ID = 10_000  # a node id given by a caller; stored tag values can be long


def parse_dataset_tokens(value: str) -> list[tuple[str, str]]:
    """[(name, version)] named by a dataset_version value; version "" when none is given."""
    out = []
    for token in (t.strip() for t in value.split("+")):
        if not token:
            continue
        match = _TOKEN.match(token)
        out.append((match["name"], match["version"]) if match else (token, ""))
    return out


def chunks(ids, size: int | None = None) -> list[list]:
    """`ids` sorted and cut into lists of at most `size` (CHUNK), for IN lists of any length;
    no lists for no ids, so an empty kind costs no query."""
    size = size or CHUNK
    ordered = sorted(ids)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _dataset_parts(key: str) -> tuple[str, str]:
    """name@version, split at the last "@" (names may hold one); no "@": every version."""
    name, at, version = key.rpartition("@")
    return (name, version) if at else (key, "")


def dataset_id(name: str, version: str) -> str:
    return f"dataset:{name}@{version}" if version else f"dataset:{name}"


def normalize_commit(value: str) -> str:
    """Commit hashes compare stripped and lowercased, cut to the 40 characters of a SHA-1."""
    return value.strip().lower()[:40]


def parse_node(node_id: Any) -> tuple[str, str]:
    """Validates a node id given by a caller (query string, link body)."""
    if not isinstance(node_id, str) or len(node_id) > MAX_ID:
        raise InvalidParameterValue("A node id such as 'version:fraud/3' is required.")
    match = _ID.match(node_id)
    if not match or match["kind"] not in KINDS:
        raise InvalidParameterValue(
            f"Invalid node id {node_id[:80]!r}: use one of {', '.join(k + ':…' for k in KINDS)}, "
            "e.g. dataset:orders@v2.1, commit:b7d9e4, run:<run_id>, logged-model:m-…, "
            "version:fraud/3, deployment:/predict."
        )
    kind, key = match["kind"], match["key"]
    if kind == "commit":
        key = normalize_commit(key)
        if len(key) < MIN_COMMIT:
            raise InvalidParameterValue(
                f"A commit id needs at least {MIN_COMMIT} characters of the hash "
                f"(e.g. commit:b7d9e4), not {node_id[:80]!r}."
            )
    if kind == "run":
        key = identifiers.run_id(key, "run id in the node id")
    elif kind == "logged-model":
        key = identifiers.logged_model_id(key, "logged model id in the node id")
    elif kind == "version":
        if not re.match(r"^.+/[0-9]{1,9}\Z", key):
            raise InvalidParameterValue(
                f"A version node is version:<model>/<number>, not {node_id!r}."
            )
        key = _canonical_version_key(key)
    return kind, key


def _canonical_version_key(key: str) -> str:
    """`<model>/<number>` with the model's stored name, however the caller spelled it (the
    name's identity key finds it, as on every other route); an unknown name stays as given
    and matches nothing."""
    name, _, number = key.rpartition("/")
    given = identifiers.model_name(name, "model name in the node id")
    stored = (
        RegisteredModel.objects.filter(name_key=identifiers.name_key(given))
        .values_list("name", flat=True)
        .first()
    )
    return f"{stored or given}/{int(number)}"


def split_node(node_id: str) -> tuple[str, str]:
    """(kind, key) of an id the server built or stored; user input goes through parse_node."""
    kind, _, key = node_id.partition(":")
    return kind, key


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes.values()),
            "edges": [{"from": s, "to": t, "kind": k} for s, t, k in sorted(self.edges)],
            "truncated": self.truncated,
        }


class Access:
    """What the caller may read, computed once per query."""

    def __init__(self, user):
        self.hidden_experiments = set(unreadable_experiment_ids(user) or ())
        self.hidden_models = set(
            grant_helpers.hidden_ids(
                user,
                RegisteredModelPermission,
                "model",
                RegisteredModel.objects.all(),
                settings.CUSTODY_DEFAULT_PERMISSION,
            )
            or ()
        )


# ---------------------------------------------------------------------------------------------
# One hop for a whole frontier. Each function answers edges (source, target, kind).


def _split(frontier: set[str]) -> dict[str, set[str]]:
    """Ids by kind. These ids were built from stored data (or validated on the way in), so
    they are split, never re-validated: a dataset name with a newline or a long token is
    not the caller's mistake."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    for node in frontier:
        kind, key = split_node(node)
        by_kind[kind].add(key)
    return by_kind


def _dataset_tag_runs(tokens: set[str], names: set[str]) -> list[tuple[str, str]]:
    """(run_id, dataset_version value) of runs naming one of `tokens` (alone or joined with
    '+'), or any version of one of `names`; the caller re-parses to keep exact matches."""
    rows: list[tuple[str, str]] = []
    # One LIKE per term, OR-ed: SQLite nests ORs, so keep well under its expression depth.
    for terms in chunks(tokens | names, size=LIKE_CHUNK):
        query = Q()
        for term in terms:
            query |= Q(value__contains=term)  # a superset: the caller keeps exact tokens only
        rows += RunTag.objects.filter(query, key=DATASET_KEY).values_list("run_id", "value")
        rows += Param.objects.filter(query, key=DATASET_KEY).values_list("run_id", "value")
    return rows


def down(frontier: set[str]) -> set[tuple[str, str, str]]:
    edges: set[tuple[str, str, str]] = set()
    by_kind = _split(frontier)
    datasets = by_kind.get("dataset", set())
    if datasets:
        named = defaultdict(set)
        tokens = {}
        for key in datasets:
            name, version = _dataset_parts(key)
            named[name].add(version)
            tokens[f"{name}_{version}" if version else name] = key
        for chunk in chunks(named):
            for run_id, name, digest, context in RunInput.objects.filter(
                dataset__name__in=chunk
            ).values_list("run_id", "dataset__name", "dataset__digest", "context"):
                if "" in named[name] or digest in named[name]:
                    source = dataset_id(name, digest if digest in named[name] else "")
                    edges.add((source, f"run:{run_id}", context or "input"))
        any_version = {name for name, versions in named.items() if "" in versions}
        exact = {t for t, key in tokens.items() if "@" in key}
        for run_id, value in _dataset_tag_runs(exact, any_version):
            for name, version in parse_dataset_tokens(value):
                token = f"{name}_{version}" if version else name
                if token in exact:
                    edges.add((dataset_id(name, version), f"run:{run_id}", DATASET_KEY))
                elif name in any_version:
                    edges.add((dataset_id(name, ""), f"run:{run_id}", DATASET_KEY))
    commits = by_kind.get("commit", set())
    for chunk in chunks(commits, size=LIKE_CHUNK):
        # Tags are matched as `up` reads them (stripped, lowercased), every prefix in the
        # frontier that matches a value getting its edge.
        prefixes = {sha: normalize_commit(sha) for sha in chunk}
        query = Q()
        for prefix in set(prefixes.values()):
            query |= Q(normalized__startswith=prefix)
        rows = (
            RunTag.objects.filter(key__in=COMMIT_TAGS)
            .annotate(normalized=Lower(Trim("value")))
            .filter(query)
            .values_list("run_id", "value")
        )
        for run_id, value in rows:
            value = normalize_commit(value)
            for sha, prefix in prefixes.items():
                if prefix and value.startswith(prefix):
                    edges.add((f"commit:{sha}", f"run:{run_id}", "code"))
    for chunk in chunks(by_kind.get("run", ())):
        for model_id, run_id in LoggedModel.objects.filter(source_run_id__in=chunk).values_list(
            "model_id", "source_run_id"
        ):
            edges.add((f"run:{run_id}", f"logged-model:{model_id}", "output"))
        for run_id, model_id in RunOutput.objects.filter(run_id__in=chunk).values_list(
            "run_id", "model_id"
        ):
            edges.add((f"run:{run_id}", f"logged-model:{model_id}", "output"))
        for name, number, run_id in ModelVersion.objects.filter(
            run_id__in=chunk, deleted=False
        ).values_list("registered_model__name", "version", "run_id"):
            edges.add((f"run:{run_id}", f"version:{name}/{number}", "registered"))
    for chunk in chunks(by_kind.get("logged-model", ())):
        for name, number, model_id in ModelVersion.objects.filter(
            model_id__in=chunk, deleted=False
        ).values_list("registered_model__name", "version", "model_id"):
            edges.add((f"logged-model:{model_id}", f"version:{name}/{number}", "registered"))
        for model_id, run_id in RunModelInput.objects.filter(model_id__in=chunk).values_list(
            "model_id", "run_id"
        ):
            edges.add((f"logged-model:{model_id}", f"run:{run_id}", "input"))
    for chunk in chunks(by_kind.get("version", ())):
        wanted = set(chunk)
        for name, number, endpoint in Deployment.objects.filter(
            _version_q(wanted, "version__")
        ).values_list("version__registered_model__name", "version__version", "endpoint"):
            if _wanted(wanted, name, number):
                edges.add((f"version:{name}/{number}", f"deployment:{endpoint}", "serves"))
    edges |= _declared(frontier, "source")
    return edges


def up(frontier: set[str]) -> set[tuple[str, str, str]]:
    edges: set[tuple[str, str, str]] = set()
    by_kind = _split(frontier)
    for chunk in chunks(by_kind.get("deployment", ())):
        for endpoint, name, number in Deployment.objects.filter(endpoint__in=chunk).values_list(
            "endpoint", "version__registered_model__name", "version__version"
        ):
            edges.add((f"version:{name}/{number}", f"deployment:{endpoint}", "serves"))
    for chunk in chunks(by_kind.get("version", ())):
        wanted = set(chunk)
        for name, number, run_id, model_id in ModelVersion.objects.filter(
            _version_q(wanted, "")
        ).values_list("registered_model__name", "version", "run_id", "model_id"):
            if not _wanted(wanted, name, number):
                continue
            if run_id:
                edges.add((f"run:{run_id}", f"version:{name}/{number}", "registered"))
            if model_id:
                edges.add((f"logged-model:{model_id}", f"version:{name}/{number}", "registered"))
    for chunk in chunks(by_kind.get("logged-model", ())):
        for model_id, run_id in LoggedModel.objects.filter(
            model_id__in=chunk, source_run__isnull=False
        ).values_list("model_id", "source_run_id"):
            edges.add((f"run:{run_id}", f"logged-model:{model_id}", "output"))
    for chunk in chunks(by_kind.get("run", ())):
        for run_id, name, digest, context in RunInput.objects.filter(run_id__in=chunk).values_list(
            "run_id", "dataset__name", "dataset__digest", "context"
        ):
            edges.add((dataset_id(name, digest), f"run:{run_id}", context or "input"))
        for model_id, run_id in RunModelInput.objects.filter(run_id__in=chunk).values_list(
            "model_id", "run_id"
        ):
            edges.add((f"logged-model:{model_id}", f"run:{run_id}", "input"))
        tag_rows = list(
            RunTag.objects.filter(
                run_id__in=chunk, key__in=(DATASET_KEY, *COMMIT_TAGS)
            ).values_list("run_id", "key", "value")
        )
        tag_rows += Param.objects.filter(run_id__in=chunk, key=DATASET_KEY).values_list(
            "run_id", "key", "value"
        )
        for run_id, key, value in tag_rows:
            if key == DATASET_KEY:
                for name, version in parse_dataset_tokens(value):
                    edges.add((dataset_id(name, version), f"run:{run_id}", DATASET_KEY))
            elif normalize_commit(value):
                edges.add((f"commit:{normalize_commit(value)}", f"run:{run_id}", "code"))
    edges |= _declared(frontier, "target")
    return edges


def _version_q(versions: set[str], prefix: str) -> Q:
    """Versions named "model/number": two IN lists (a superset, one index-friendly query)
    instead of one OR per version; callers keep the exact pairs with `_wanted`."""
    names, numbers = set(), set()
    for key in versions:
        name, _, number = key.rpartition("/")
        names.add(name)
        numbers.add(int(number))
    return Q(
        **{
            f"{prefix}registered_model__name__in": names,
            f"{prefix}version__in": numbers,
            f"{prefix}deleted": False,
        }
    )


def _wanted(versions: set[str], name: str, number: int) -> bool:
    return f"{name}/{number}" in versions


def _declared(frontier: set[str], side: str) -> set[tuple[str, str, str]]:
    edges: set[tuple[str, str, str]] = set()
    for chunk in chunks(frontier):
        edges.update(
            LineageLink.objects.filter(**{f"{side}__in": chunk}).values_list(
                "source", "target", "kind"
            )
        )
    return edges


# ---------------------------------------------------------------------------------------------
# Facts about nodes, batched per kind, with redaction.


def describe(
    node_ids: set[str], access: Access, *, run_metrics: bool = True
) -> dict[str, dict[str, Any]]:
    """Facts of the nodes the caller may read (those absent are to be redacted); batched per
    kind. `run_metrics=False` skips the runs' metrics (for visibility checks alone)."""
    by_kind = _split(node_ids)
    facts: dict[str, dict[str, Any]] = {}
    for key in by_kind.get("dataset", ()):
        name, version = _dataset_parts(key)
        facts[f"dataset:{key}"] = {
            "kind": "dataset",
            "label": key,
            "name": name,
            "version": version,
        }
    for key in by_kind.get("commit", ()):
        facts[f"commit:{key}"] = {"kind": "commit", "label": key[:12], "commit": key}
    for chunk in chunks(by_kind.get("run", ())):
        metrics = defaultdict(dict)  # the first METRICS_PER_RUN keys of each run, by name
        for run_id, metric, value in (
            LatestMetric.objects.filter(run_id__in=chunk, is_nan=False)
            .order_by("run_id", "key")
            .values_list("run_id", "key", "value")
            if run_metrics
            else ()
        ):
            if len(metrics[run_id]) < METRICS_PER_RUN:
                metrics[run_id][metric] = value
        for run in Run.objects.filter(run_id__in=chunk).values(
            "run_id", "name", "experiment_id", "user_id", "status", "start_time"
        ):
            node = f"run:{run['run_id']}"
            if run["experiment_id"] in access.hidden_experiments:
                continue
            facts[node] = {
                "kind": "run",
                "label": run["name"] or run["run_id"][:8],
                "run_id": run["run_id"],
                "experiment_id": str(run["experiment_id"]),
                "user": run["user_id"],
                "status": run["status"],
                "start_time": run["start_time"],
                "metrics": metrics[run["run_id"]],
            }
    for chunk in chunks(by_kind.get("logged-model", ())):
        models = [
            m
            for m in LoggedModel.objects.filter(model_id__in=chunk).values(
                "model_id", "name", "experiment_id", "source_run_id"
            )
            if m["experiment_id"] not in access.hidden_experiments
        ]
        hidden_runs = _hidden_runs({m["source_run_id"] for m in models}, access)
        # The registered versions it backs (its mlflow.modelVersions tag, read from the
        # registry that maintains it), without those of models the viewer cannot read.
        backs: dict[str, list[str]] = defaultdict(list)
        for model_id, model_pk, name, number in (
            ModelVersion.objects.filter(model_id__in=[m["model_id"] for m in models], deleted=False)
            .order_by("creation_timestamp", "pk")
            .values_list("model_id", "registered_model_id", "registered_model__name", "version")
        ):
            if model_pk not in access.hidden_models:
                backs[model_id].append(f"{name}/{number}")
        for model in models:
            facts[f"logged-model:{model['model_id']}"] = {
                "kind": "logged-model",
                "label": model["name"] or model["model_id"],
                "model_id": model["model_id"],
                **_run_ref("source_run", model["source_run_id"], hidden_runs),
                "registered_versions": backs[model["model_id"]],
            }
    for chunk in chunks(by_kind.get("version", ())):
        wanted = set(chunk)
        rows = [
            mv
            for mv in ModelVersion.objects.filter(_version_q(wanted, "")).values(
                "registered_model_id",
                "registered_model__name",
                "version",
                "current_stage",
                "run_id",
            )
            if _wanted(wanted, mv["registered_model__name"], mv["version"])
            and mv["registered_model_id"] not in access.hidden_models
        ]
        hidden_runs = _hidden_runs({mv["run_id"] for mv in rows}, access)
        for mv in rows:
            name = mv["registered_model__name"]
            facts[f"version:{name}/{mv['version']}"] = {
                "kind": "version",
                "label": f"{name} v{mv['version']}",
                "model": name,
                "version": mv["version"],
                "stage": mv["current_stage"],
                **_run_ref("run_id", mv["run_id"], hidden_runs),
            }
    live: list[tuple[str, int, str, int]] = []  # open deployments: resolved below, together
    for chunk in chunks(by_kind.get("deployment", ())):
        rows = Deployment.objects.filter(endpoint__in=chunk).order_by("endpoint", "-since")
        decided: set[str] = set()
        for d in rows.values(
            "endpoint",
            "until",
            "since",
            "model_uri",
            "version__registered_model_id",
            "version__registered_model__name",
            "version__version",
        ):
            node = f"deployment:{d['endpoint']}"
            if node in decided:
                continue  # the newest deployment decides
            decided.add(node)
            if d["version__registered_model_id"] in access.hidden_models:
                continue  # a hidden model hides the endpoint
            serving = f"{d['version__registered_model__name']} v{d['version__version']}"
            facts[node] = {
                "kind": "deployment",
                "label": d["endpoint"],
                "endpoint": d["endpoint"],
                "serving": serving if d["until"] is None else None,
                "since": d["since"].isoformat(),
            }
            if d["until"] is None:
                live.append(
                    (node, d["version__registered_model_id"], d["model_uri"], d["version__version"])
                )
    if live:
        # What each endpoint's URI answers now beside what was recorded (two queries in all).
        stages, aliases = resolution.model_states({model_id for _, model_id, _, _ in live})
        for node, model_id, uri, recorded in live:
            now = resolution.resolve_in(uri, stages[model_id], aliases[model_id])
            facts[node]["model_uri"] = uri
            facts[node]["resolves_to"] = now
            facts[node]["drifted"] = now != recorded
    return facts


def _hidden_runs(run_ids: set[str | None], access: Access) -> set[str]:
    """The runs among `run_ids` in experiments the caller may not read (no query when the
    caller may read every experiment)."""
    run_ids = {r for r in run_ids if r}
    if not access.hidden_experiments or not run_ids:
        return set()
    hidden: set[str] = set()
    for chunk in chunks(run_ids):
        hidden.update(
            Run.objects.filter(
                run_id__in=chunk, experiment_id__in=access.hidden_experiments
            ).values_list("run_id", flat=True)
        )
    return hidden


def _run_ref(field_name: str, run_id: str | None, hidden: set[str]) -> dict[str, Any]:
    """A version's or logged model's run, or null and `<field>_redacted` when hidden."""
    if run_id and run_id in hidden:
        return {field_name: None, f"{field_name}_redacted": True}
    return {field_name: run_id or None}


def visible(node_ids: set[str], user) -> set[str]:
    """The ids among `node_ids` the caller may see: datasets and commits, and the runs,
    logged models, versions and endpoints `describe` reports (administrators: all)."""
    if access_rules.is_admin(user):
        return set(node_ids)
    facts = describe(node_ids, Access(user))
    return {n for n in node_ids if n in facts or split_node(n)[0] in ("dataset", "commit")}


def _start(node_id: str, depth: int, direction: str = "down") -> str:
    if direction not in ("up", "down", "both"):
        raise InvalidParameterValue("direction must be 'up', 'down' or 'both'.")
    if not 0 <= depth <= MAX_DEPTH:
        raise InvalidParameterValue(f"depth must be from 0 to {MAX_DEPTH}.")
    kind, key = parse_node(node_id)
    return f"{kind}:{key}"  # commit ids normalised


def _build(
    graph: Graph, start: str, seen: set[str], access: Access, facts: dict | None = None
) -> Graph:
    """Nodes with their facts; what the caller may not read becomes a placeholder."""
    facts = describe(seen, access) if facts is None else facts
    redacted: dict[str, str] = {}
    for node in sorted(seen):
        kind = _kind(node)
        if node in facts:
            graph.nodes[node] = {"id": node, **facts[node]}
        elif kind in REDACTABLE:
            placeholder = f"redacted:{len(redacted) + 1}"
            redacted[node] = placeholder
            graph.nodes[placeholder] = {
                "id": placeholder,
                "kind": kind,
                "redacted": True,
                "label": "not visible to you",
            }
        else:
            graph.nodes[node] = {"id": node, "kind": kind, "label": node}
    if redacted:
        graph.edges = {(redacted.get(s, s), redacted.get(t, t), k) for s, t, k in graph.edges}
    if start in seen:
        graph.nodes[redacted.get(start, start)]["root"] = True
    return graph


def _kind(node: str) -> str:
    return node.partition(":")[0]


def _passable(nodes: set[str], facts: dict[str, dict[str, Any]]) -> set[str]:
    """The nodes a walk may go on from: a node the caller may not read is a leaf (shown as
    a placeholder), so nothing it used or produced is revealed through it."""
    return {n for n in nodes if n in facts or _kind(n) not in REDACTABLE}


def traverse(start: str, direction: str, depth: int, user) -> Graph:
    """The subgraph within `depth` hops, cut at MAX_NODES nodes (`truncated`): a hop that
    would pass the cap keeps the first nodes in id order and the edges between kept nodes."""
    start = _start(start, depth, direction)
    access = Access(user)
    graph = Graph()
    seen = {start}
    facts = describe(seen, access)  # each node is described once, as the walk reaches it
    origin = _passable(seen, facts)
    frontiers = {"up": origin, "down": origin}
    for _ in range(depth):
        for way in ("up", "down"):
            if direction not in (way, "both") or not frontiers[way]:
                continue
            edges = (up if way == "up" else down)(frontiers[way])
            nxt = set()
            for edge in sorted(edges, key=lambda e: (e[0] if way == "up" else e[1], e)):
                other = edge[0] if way == "up" else edge[1]
                if other not in seen:
                    if len(seen) >= MAX_NODES:
                        graph.truncated = True
                        continue
                    seen.add(other)
                    nxt.add(other)
                graph.edges.add(edge)
            facts.update(describe(nxt, access))
            frontiers[way] = _passable(nxt, facts)
        if graph.truncated:
            break
    return _build(graph, start, seen, access, facts)


def impact(dataset: str, version: str | None, user) -> dict[str, Any]:
    """Everything downstream of a dataset: runs, model versions (with stage), deployments.

    The walk is complete (MAX_DEPTH hops, no node cap), so every version and deployment is
    reported however many runs used the data; runs are described up to MAX_NODES (in id
    order) and counted in `runs_total`, `truncated` when some are left out."""
    if not dataset or len(dataset) > 500:
        raise InvalidParameterValue("A dataset name is required.")
    start = dataset_id(dataset, version or "")
    access = Access(user)
    seen = {start}
    frontier = {start}
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        frontier = {target for _, target, _ in down(frontier)} - seen
        seen |= frontier
        frontier = _passable(frontier, describe(frontier, access, run_metrics=False))
    runs = sorted(node for node in seen if _kind(node) == "run")
    shown = set(runs[:MAX_NODES])
    described = {node for node in seen if _kind(node) in ("version", "deployment")} | shown
    graph = _build(Graph(), start, described, access)
    groups: dict[str, list[dict[str, Any]]] = {"runs": [], "versions": [], "deployments": []}
    for node in graph.nodes.values():
        kind = node["kind"]
        if kind == "run":
            groups["runs"].append(node)
        elif kind == "version":
            groups["versions"].append(node)
        elif kind == "deployment":
            groups["deployments"].append(node)
    return {
        "dataset": start,
        **groups,
        "runs_total": len(runs),
        "truncated": len(runs) > len(shown),
    }

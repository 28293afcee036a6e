"""What recorded `models:/` URIs resolve to now, for many at once (deployment lists), and what
they would resolve to in a given state (what approving a move would change): the same answers
as `selectors.resolve_model_uri`, in two queries whatever the number of URIs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from core import identifiers
from core.errors import ApplicationError
from registry.models import Deployment, ModelVersion, RegisteredModelAlias
from registry.transitions import Stage, canonical_stage


def resolve_in(uri: str, stages: Mapping[int, str], aliases: Mapping[str, int]) -> int | None:
    """The version number `uri` answers in one model whose non-deleted versions are in
    `stages` ({number: stage}) and whose aliases are `aliases` ({alias: number}), or None.
    Rules as in `resolve_model_uri`: a stage or `latest` never answers an archived version, a
    number answers the version unless it is archived, an alias whatever version it points at."""
    try:
        parsed = identifiers.model_uri(uri)
    except ApplicationError:
        return None
    if parsed.alias is not None:
        number = aliases.get(parsed.alias)
        return number if number in stages else None
    if parsed.version is not None:
        stage = stages.get(parsed.version)
        return parsed.version if stage is not None and stage != Stage.ARCHIVED else None
    if parsed.latest:
        return max((n for n, s in stages.items() if s != Stage.ARCHIVED), default=None)
    try:
        wanted = canonical_stage(parsed.stage)
    except ApplicationError:
        return None
    if wanted == Stage.ARCHIVED:
        return None
    return max((n for n, s in stages.items() if s == wanted), default=None)


def model_states(
    model_ids: Iterable[int],
) -> tuple[dict[int, dict[int, str]], dict[int, dict[str, int]]]:
    """({model id: {version: stage}}, {model id: {alias: version}}) in two queries."""
    ids = set(model_ids)
    stages: dict[int, dict[int, str]] = {model_id: {} for model_id in ids}
    aliases: dict[int, dict[str, int]] = {model_id: {} for model_id in ids}
    if not ids:
        return stages, aliases
    for model_id, number, stage in ModelVersion.objects.filter(
        registered_model_id__in=ids, deleted=False
    ).values_list("registered_model_id", "version", "current_stage"):
        stages[model_id][number] = stage
    for model_id, alias, number in RegisteredModelAlias.objects.filter(
        model_id__in=ids
    ).values_list("model_id", "alias", "version__version"):
        aliases[model_id][alias] = number
    return stages, aliases


def deployment_resolutions(
    deployments: Sequence[Deployment],
) -> dict[int, dict[str, int | bool | None]]:
    """{deployment id: {"resolves_to": version number or None, "drifted": bool}}. The model is
    the recorded version's (by id, so a renamed model's deployments still resolve). A current
    deployment has drifted when its URI now answers another version than the one recorded (or
    none); a closed one never counts as drifted. Needs `version` loaded; two queries."""
    stages, aliases = model_states(d.version.registered_model_id for d in deployments)
    out: dict[int, dict[str, int | bool | None]] = {}
    for d in deployments:
        model_id = d.version.registered_model_id
        now = resolve_in(d.model_uri, stages[model_id], aliases[model_id])
        out[d.pk] = {"resolves_to": now, "drifted": d.until is None and now != d.version.version}
    return out

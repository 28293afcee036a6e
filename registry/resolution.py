"""What recorded `models:/` URIs resolve to now, for many at once (deployment lists): the same
answers as `selectors.resolve_model_uri`, in two queries whatever the number of URIs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core import identifiers
from core.errors import ApplicationError
from registry.models import Deployment, ModelVersion, RegisteredModelAlias
from registry.transitions import Stage, canonical_stage


def resolve_many(uris: Iterable[tuple[int, str]]) -> dict[tuple[int, str], int | None]:
    """{(registered model id, uri): the version number it resolves to now, or None}. The model
    is named by id, not by the name in the URI, so a renamed model's deployments still resolve.
    Rules as in `resolve_model_uri`: a stage or `latest` never answers an archived version, a
    number answers the version unless it is archived, an alias whatever version it points at."""
    wanted = {(model_id, uri) for model_id, uri in uris}
    model_ids = {model_id for model_id, _ in wanted}
    if not model_ids:
        return {}
    # Highest version per (model, stage), and the non-archived version numbers: one query.
    by_stage: dict[tuple[int, str], int] = {}
    live: dict[int, set[int]] = {model_id: set() for model_id in model_ids}
    for model_id, number, stage in (
        ModelVersion.objects.filter(registered_model_id__in=model_ids, deleted=False)
        .exclude(current_stage=Stage.ARCHIVED)
        .order_by("-version")
        .values_list("registered_model_id", "version", "current_stage")
    ):
        by_stage.setdefault((model_id, stage), number)
        live[model_id].add(number)
    # Aliases: one query.
    aliases = {
        (model_id, alias): number
        for model_id, alias, number in RegisteredModelAlias.objects.filter(
            model_id__in=model_ids, version__deleted=False
        ).values_list("model_id", "alias", "version__version")
    }
    result: dict[tuple[int, str], int | None] = {}
    for model_id, uri in wanted:
        try:
            parsed = identifiers.model_uri(uri)
        except ApplicationError:
            result[(model_id, uri)] = None
            continue
        if parsed.alias is not None:
            answer = aliases.get((model_id, parsed.alias))
        elif parsed.version is not None:
            answer = parsed.version if parsed.version in live[model_id] else None
        elif parsed.latest:
            answer = max(live[model_id], default=None)
        else:
            try:
                stage = canonical_stage(parsed.stage)
            except ApplicationError:
                stage = ""
            answer = by_stage.get((model_id, stage))
        result[(model_id, uri)] = answer
    return result


def deployment_resolutions(
    deployments: Sequence[Deployment],
) -> dict[int, dict[str, int | bool | None]]:
    """{deployment id: {"resolves_to": version number or None, "drifted": bool}}. A current
    deployment has drifted when its URI now resolves to another version than the one recorded
    (or to none); a closed one never counts as drifted. Needs `version` loaded."""
    answers = resolve_many((d.version.registered_model_id, d.model_uri) for d in deployments)
    out: dict[int, dict[str, int | bool | None]] = {}
    for d in deployments:
        now = answers[(d.version.registered_model_id, d.model_uri)]
        out[d.pk] = {
            "resolves_to": now,
            "drifted": d.until is None and now != d.version.version,
        }
    return out

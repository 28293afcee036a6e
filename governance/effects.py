"""What approving a transition request will do, said before it is given: the versions it
moves (the requested one, and those it archives in the same transaction), the aliases that
leave with Production (the ones the policy protects) or stay on a version that is archived,
and the current deployments whose `models:/` URI will answer another version. Read from the
model's state now in a fixed number of queries; the registry's rules, replayed in memory."""

from __future__ import annotations

from typing import Any

from governance import policy as rules
from governance.models import TransitionRequest as TR
from registry import resolution
from registry.models import Deployment
from registry.transitions import Stage


def approval_effects(req: TR) -> dict[str, Any]:
    mv = req.version
    model = mv.registered_model
    stages_by_model, aliases_by_model = resolution.model_states([model.pk])
    before, aliases = stages_by_model[model.pk], aliases_by_model[model.pk]
    target = req.to_stage
    after = dict(before)
    archived = []
    if target == Stage.PRODUCTION or (req.archive_existing_versions and target == Stage.STAGING):
        # As registry.services.model_version_transition_stage does, in the same transaction.
        archived = sorted(n for n, s in before.items() if s == target and n != mv.version)
    for number in archived:
        after[number] = Stage.ARCHIVED
    if mv.version in after:
        after[mv.version] = target
    moves = [
        {"version": n, "from": before[n], "to": after[n]}
        for n in sorted(after)
        if before[n] != after[n]
    ]
    leaving_production = {
        n for n, s in before.items() if s == Stage.PRODUCTION and after[n] != Stage.PRODUCTION
    }
    protected = set(rules.policy_for(model).protected_aliases)
    aliases_after = dict(aliases)
    removed, kept_on_archived = [], []
    for alias, number in sorted(aliases.items()):
        if number in leaving_production and alias in protected:
            removed.append(
                {"alias": alias, "version": number, "why": "protected: follows Production"}
            )
            del aliases_after[alias]
        elif after.get(number) == Stage.ARCHIVED and before.get(number) != Stage.ARCHIVED:
            kept_on_archived.append({"alias": alias, "version": number})
    deployments = []
    for d in (
        Deployment.objects.filter(version__registered_model=model, until__isnull=True)
        .select_related("version")
        .order_by("endpoint")
    ):
        now = resolution.resolve_in(d.model_uri, before, aliases)
        then = resolution.resolve_in(d.model_uri, after, aliases_after)
        if now != then:
            deployments.append(
                {"endpoint": d.endpoint, "model_uri": d.model_uri, "now": now, "after": then}
            )
    return {
        "versions_moved": moves,
        "versions_archived": archived,
        "aliases_removed": removed,
        # Unprotected aliases stay (MLflow semantics) and keep answering the archived version.
        "aliases_kept_on_archived": kept_on_archived,
        "deployments_changed": deployments,
    }


def describe(effects: dict[str, Any]) -> list[str]:
    """The effects in plain words, one line each, for the review screens."""
    lines = [f"v{m['version']}: {m['from']} → {m['to']}" for m in effects["versions_moved"]]
    lines += [
        f"@{a['alias']} is removed from v{a['version']} (a protected alias follows Production)"
        for a in effects["aliases_removed"]
    ]
    lines += [
        f"@{a['alias']} stays on v{a['version']}, which is archived (models:/…@{a['alias']} "
        "keeps loading it)"
        for a in effects["aliases_kept_on_archived"]
    ]
    lines += [
        f"deployment {d['endpoint']} ({d['model_uri']}) resolves to "
        f"{'v' + str(d['after']) if d['after'] else 'nothing'} instead of "
        f"{'v' + str(d['now']) if d['now'] else 'nothing'}"
        for d in effects["deployments_changed"]
    ]
    return lines

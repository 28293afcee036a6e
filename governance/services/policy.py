"""Writes to a model's policy, and the checks the policy makes on the registry's behalf
(registration, protected aliases, the archive grace period), with the audit record of an
attempt it refuses."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from audit import services as audit
from core import access, refusals
from core.errors import InvalidParameterValue, PermissionDenied
from governance import policy as rules
from governance.models import ModelPolicy
from governance.services.common import refusals_audited
from registry import selectors as registry_selectors
from registry.models import ModelVersion, RegisteredModel
from registry.transitions import Stage


def _policy_values(policy: ModelPolicy) -> dict[str, Any]:
    values = rules.payload(policy)
    return {k: v for k, v in values.items() if k not in ("model", "is_default")}


@refusals_audited("policy.update", "model_policy")
@transaction.atomic
def policy_update(*, user, name: str, data: Any) -> ModelPolicy:
    """Admins may set anything; the model's managers may only make the policy stricter."""
    from django.contrib.auth import get_user_model

    model = registry_selectors.registered_model_get(name, for_update=True)
    changes = rules.clean_policy(data)
    policy = rules.policy_for(model)
    before = _policy_values(policy)
    proposed = {**before, **changes}
    reviewers = None
    if "reviewers" in (data or {}):
        names = data["reviewers"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidParameterValue("'reviewers' must be a list of usernames.")
        users = list(get_user_model().objects.filter(username__in=names, is_active=True))
        unknown = sorted(set(names) - {u.username for u in users})
        if unknown:
            raise InvalidParameterValue(f"Unknown or disabled reviewer(s): {', '.join(unknown)}.")
        reviewers = users
        proposed["reviewers"] = sorted(u.username for u in users)
    if not access.is_admin(user):
        looser = rules.loosenings(before, proposed)
        if looser:
            raise PermissionDenied(
                f"Only an admin can loosen the policy of '{model.name}': "
                + "; ".join(looser)
                + ". Managers may only make it stricter."
            )
    if "protected_aliases" in changes:
        astray = [
            f"'{alias}' points at version {number} ({stage})"
            for alias, number, stage in model.aliases.filter(alias__in=changes["protected_aliases"])
            .exclude(version__current_stage=Stage.PRODUCTION)
            .values_list("alias", "version__version", "version__current_stage")
        ]
        if astray:
            raise InvalidParameterValue(
                "A protected alias may only point at the Production version: "
                + "; ".join(astray)
                + ". Move or delete these aliases first."
            )
    if policy.pk is None:
        policy.save()
    for key, value in changes.items():
        setattr(policy, key, value)
    policy.save()
    if reviewers is not None:
        policy.reviewers.set(reviewers)
    after = _policy_values(policy)
    audit.record(
        action="policy.update",
        object_type="model_policy",
        object_id=policy.pk,
        object_name=model.name,
        model_name=model.name,
        before=before,
        after=after,
    )
    return policy


def archive_grace_of(model: RegisteredModel) -> int:
    grace = (
        ModelPolicy.objects.filter(model=model).values_list("archive_grace_seconds", flat=True)
    ).first()
    if grace is None:
        return settings.CUSTODY_ARCHIVE_GRACE_SECONDS
    return grace


def check_registration(model: RegisteredModel, run_id: str) -> None:
    policy = rules.policy_for(model)
    if not policy.require_tags_at_registration:
        return
    tags, _ = rules.run_facts(run_id)
    missing = rules.tag_check(policy, tags, run_id)
    if missing:
        message = (
            f"The policy of '{model.name}' requires lineage tags before registration: "
            + "; ".join(m.message for m in missing)
            + "."
        )
        raise InvalidParameterValue(
            message,
            refusal=_refusal(
                "model_version.create.refused", "model_version", model.name, message, run_id=run_id
            ),
        )


def check_alias(model: RegisteredModel, alias: str, mv: ModelVersion) -> None:
    """A protected alias may only point at the model's Production version: moving it is a
    promotion, and promotions go through review."""
    policy = rules.policy_for(model)
    if alias in policy.protected_aliases and mv.current_stage != Stage.PRODUCTION:
        message = (
            f"Alias '{alias}' of '{model.name}' is protected by the model's policy: it may only "
            f"point at the Production version, and version {mv.version} is {mv.current_stage}. "
            "Request a promotion to Production first (POST /api/v1/transition-requests)."
        )
        raise PermissionDenied(
            message,
            refusal=_refusal(
                "model_version.alias.set.refused",
                "model_version",
                model.name,
                message,
                version=mv.version,
                alias=alias,
            ),
        )


def _refusal(
    action: str,
    object_type: str,
    model_name: str,
    reason: str,
    *,
    version: int | None = None,
    **attempted: Any,
) -> dict[str, Any]:
    """The audit record of an attempt the policy refused (see core.refusals)."""
    return refusals.rule_refusal(
        action,
        reason,
        object_type=object_type,
        object_id="",
        object_name=model_name if version is None else f"{model_name}/{version}",
        model_name=model_name,
        model_version=version,
        after=attempted,
    )

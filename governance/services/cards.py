"""Writes to a version's model card."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from core.errors import InvalidParameterValue
from core.mlflow_api import check_text
from governance.models import CARD_FIELDS, ModelCard
from governance.selectors.cards import card_draft
from governance.services.common import lock_version


@transaction.atomic
def card_update(*, user, name: str, version: Any, fields: Any) -> ModelCard:
    if not isinstance(fields, dict):
        raise InvalidParameterValue("The model card must be a JSON object of its fields.")
    # What GET answers besides the fields may come back unchanged (a GET, edit, PUT round trip).
    read_only = {"complete", "missing", "saved", "fields", "updated_at", "updated_by"}
    unknown = sorted(set(fields) - set(CARD_FIELDS) - read_only)
    if unknown:
        raise InvalidParameterValue(
            f"Unknown model card field(s): {', '.join(unknown)}. Fields: {', '.join(CARD_FIELDS)}."
        )
    model, mv = lock_version(name, version)
    card = ModelCard.objects.filter(version=mv).first()
    before = {f: getattr(card, f) for f in CARD_FIELDS} if card else None
    if card is None:
        card = card_draft(mv)
    for key in CARD_FIELDS:
        if key in fields:
            setattr(card, key, check_text(fields[key] or "", key, max_length=50_000))
    card.updated_at = timezone.now()
    card.updated_by = user.get_username()
    card.save()
    audit.record(
        action="model_card.update",
        object_type="model_card",
        object_id=card.pk,
        object_name=f"{model.name}/{mv.version}",
        model_name=model.name,
        model_version=mv.version,
        before=before,
        after={f: getattr(card, f) for f in CARD_FIELDS},
    )
    return card

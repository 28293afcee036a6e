"""Reads of model cards: pre-filled from lineage, as the API's payload, exported as Markdown."""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from governance.models import CARD_FIELDS, ModelCard
from registry.models import ModelVersion
from tracking.models import LatestMetric, Param, RunInput, RunTag


def _lineage_facts(mv: ModelVersion) -> tuple[str, str]:
    """(training data, evaluation results) pre-filled from the version's source run."""
    if not mv.run_id:
        return "", ""
    inputs = RunInput.objects.filter(run_id=mv.run_id).select_related("dataset")
    lines = [
        f"- {i.dataset.name} (digest {i.dataset.digest}"
        + (f", {i.context}" if i.context else "")
        + (f", source {i.dataset.source_type}" if i.dataset.source_type else "")
        + ")"
        for i in inputs
    ]
    tags = dict(RunTag.objects.filter(run_id=mv.run_id).values_list("key", "value"))
    params = dict(Param.objects.filter(run_id=mv.run_id).values_list("key", "value"))
    dataset_version = tags.get("dataset_version") or params.get("dataset_version")
    if dataset_version:
        lines.append(f"- dataset_version: {dataset_version}")
    metrics = [
        f"- {key}: {'NaN' if is_nan else f'{value:.6g}'}"
        for key, value, is_nan in LatestMetric.objects.filter(run_id=mv.run_id)
        .order_by("key")
        .values_list("key", "value", "is_nan")
    ]
    return "\n".join(lines), "\n".join(metrics)


def card_draft(mv: ModelVersion) -> ModelCard:
    """An unsaved card with training data and evaluation results from lineage."""
    training, evaluation = _lineage_facts(mv)
    return ModelCard(
        version=mv,
        training_data=training,
        evaluation_results=evaluation,
        updated_at=timezone.now(),
    )


def card_get(mv: ModelVersion) -> tuple[ModelCard, bool]:
    card = ModelCard.objects.filter(version=mv).first()
    if card is not None:
        return card, True
    return card_draft(mv), False


def card_payload(card: ModelCard, saved: bool) -> dict[str, Any]:
    missing = card.missing_fields()
    return {
        **{field: getattr(card, field) for field in CARD_FIELDS},
        "saved": saved,
        "complete": saved and not missing,
        "missing": missing if saved else list(CARD_FIELDS),
        "fields": [
            {"name": f, "label": label, "filled": bool(getattr(card, f).strip())}
            for f, label in CARD_FIELDS.items()
        ],
        "updated_at": card.updated_at.isoformat() if saved else None,
        "updated_by": card.updated_by if saved else None,
    }


def _yaml(value: Any) -> str:
    # A JSON scalar is a valid YAML scalar, and needs no YAML library.
    return json.dumps(value, ensure_ascii=False)


def card_markdown(card: ModelCard) -> str:
    """The card as Markdown with Hugging Face model-card YAML front matter."""
    mv = card.version
    name = mv.registered_model.name
    metrics = (
        list(
            LatestMetric.objects.filter(run_id=mv.run_id, is_nan=False)
            .order_by("key")
            .values_list("key", "value")
        )
        if mv.run_id
        else []
    )
    inputs = (
        list(RunInput.objects.filter(run_id=mv.run_id).values_list("dataset__name", "context"))
        if mv.run_id
        else []
    )
    named = (
        RunTag.objects.filter(run_id=mv.run_id, key="dataset_version")
        .values_list("value", flat=True)
        .first()
        if mv.run_id
        else None
    )
    datasets = sorted(
        {d for d, _ in inputs} | {t.strip() for t in (named or "").split("+") if t.strip()}
    )
    # Hugging Face's model-index wants the dataset each result was measured on: the
    # evaluation input when the run logged one, else its first dataset.
    evaluated = next((d for d, c in inputs if c == "evaluation"), None) or (
        datasets[0] if datasets else "unspecified"
    )
    front = [
        "---",
        "library_name: mlflow",
        "tags:",
        "  - custody",
        f"  - {_yaml(mv.current_stage)}",
    ]
    if datasets:
        front.append("datasets:")
        front += [f"  - {_yaml(d)}" for d in datasets]
    front += ["model-index:", f"  - name: {_yaml(f'{name} v{mv.version}')}", "    results:"]
    front += [
        "      - task:",
        '          type: "custom"',
        "        dataset:",
        f"          type: {_yaml(evaluated)}",
        f"          name: {_yaml(evaluated)}",
        "        metrics:",
    ]
    if metrics:
        for key, value in metrics:
            front += [
                f"          - type: {_yaml(key)}",
                f"            name: {_yaml(key)}",
                f"            value: {_yaml(value)}",
            ]
    else:
        front[-1] = "        metrics: []"
    front.append("---")
    body = [f"# {name}, version {mv.version}", ""]
    body.append(f"Stage: {mv.current_stage}. Source run: {mv.run_id or 'none'}.")
    for field, label in CARD_FIELDS.items():
        body += ["", f"## {label}", "", getattr(card, field).strip() or "_Not provided._"]
    return "\n".join(front + body) + "\n"

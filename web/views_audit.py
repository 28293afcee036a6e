"""The audit page for compliance officers and admins: filters, the events, streamed exports,
background exports and chain verification. Everyone else is refused (403)."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from audit import anchors
from audit import selectors as audit_selectors
from audit.api_v1 import filters_from, parse_time
from audit.export import filtered_events
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import chain_pending
from core import access, refusals
from core.errors import ApplicationError, InvalidParameterValue, ResourceDoesNotExist
from governance import exports
from governance.models import AuditExport
from web.pages import page

PAGE_SIZE = 100
FILTER_KEYS = ("model", "version", "actor", "action", "object_type", "outcome", "since", "until")
# The periodic task signs the head every 5 minutes; older than this, it is not running.
CHECKPOINT_OVERDUE = timedelta(minutes=15)


def _picker_value(raw: str) -> str:
    """A since/until filter as a datetime-local input shows it (UTC, to the second); what
    does not parse stays as typed, and the filter reports it."""
    try:
        moment = parse_time(raw, "time")
    except InvalidParameterValue:
        return raw
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


def checkpoint_status() -> dict:
    """The newest signed checkpoint, how many events came after it, and whether the periodic
    task that signs them looks stopped (none yet, or none for CHECKPOINT_OVERDUE)."""
    latest = AuditCheckpoint.objects.order_by("-seq").first()
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return {
        "latest": latest,
        "count": AuditCheckpoint.objects.count(),
        "unsigned": head - (latest.seq if latest else 0),
        "overdue": latest is None
        or (head > latest.seq and timezone.now() - latest.created_at > CHECKPOINT_OVERDUE),
    }


@page(access.AUDIT_READ)
def audit_page(request):
    if request.method == "POST":
        return _export_in_background(request)
    values = {k: request.GET.get(k, "").strip() for k in FILTER_KEYS}
    pickers = {k: _picker_value(values[k]) for k in ("since", "until")}
    error, events, filters = None, [], {}
    try:
        filters = filters_from({k: v for k, v in values.items() if v})
        chain_pending()  # events listed by seq: none may still wait for one
        before = request.GET.get("before_seq")
        qs = filtered_events(**filters).order_by("-seq")
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if before and before.isascii() and before.isdigit() and len(before) <= 18:
            qs = qs.filter(seq__lt=int(before))
        events = list(qs[: PAGE_SIZE + 1])
    except ApplicationError as exc:
        error = exc.message
    query = urlencode({k: v for k, v in values.items() if v})
    verification = None
    if request.GET.get("verify"):
        verification = audit_selectors.verify_live_chain().as_dict()
    return render(
        request,
        "web/audit.html",
        {
            "nav": "audit",
            "values": values,
            "pickers": pickers,
            "checkpoints": checkpoint_status(),
            "error": error,
            "events": events[:PAGE_SIZE],
            "next_before": events[PAGE_SIZE - 1].seq if len(events) > PAGE_SIZE else None,
            "query": query,
            "verification": verification,
            "anchor_status": anchors.newest_status(),
            "exports": AuditExport.objects.select_related("requested_by").order_by("-pk")[:10],
        },
    )


def _export_in_background(request):
    values = {k: request.POST.get(k, "").strip() for k in FILTER_KEYS}
    try:
        filters = filters_from({k: v for k, v in values.items() if v})
        filters.pop("after_seq", None)
        export = exports.export_create(
            user=request.user, filters=filters, fmt=request.POST.get("format", "csv")
        )
        messages.success(
            request, f"Export #{export.pk} queued; its download link appears below when done."
        )
    except ApplicationError as exc:
        refusals.show(request, exc)
    query = urlencode({k: v for k, v in values.items() if v})
    return HttpResponseRedirect(reverse("web:audit") + (f"?{query}" if query else ""))


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@page(access.AUDIT_READ)
def audit_event(request, seq: int):
    """One event: who, what, when and how, with its before and after side by side (a row per
    field, the changed ones marked)."""
    event = AuditEvent.objects.filter(seq=seq).first()
    if event is None:
        raise ResourceDoesNotExist(f"No audit event #{seq}.")
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    fields = [
        {
            "key": key,
            "before": _pretty(before[key]) if key in before else None,
            "after": _pretty(after[key]) if key in after else None,
            "changed": before.get(key, object()) != after.get(key, object()),
        }
        for key in sorted(set(before) | set(after))
    ]
    neighbours = AuditEvent.objects.filter(seq__in=[seq - 1, seq + 1]).values_list("seq", flat=True)
    return render(
        request,
        "web/audit_event.html",
        {
            "nav": "audit",
            "event": event,
            "fields": fields,
            "raw_before": None if event.before is None else _pretty(event.before),
            "raw_after": None if event.after is None else _pretty(event.after),
            "scalar": not isinstance(event.before or {}, dict)
            or not isinstance(event.after or {}, dict),
            "previous": seq - 1 if seq - 1 in neighbours else None,
            "next": seq + 1 if seq + 1 in neighbours else None,
        },
    )

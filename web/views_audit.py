"""The audit page for compliance officers and admins: filters, the events, streamed exports,
background exports and chain verification. Everyone else is refused (403)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from audit import anchors
from audit import selectors as audit_selectors
from audit.api_v1 import filters_from
from audit.export import filtered_events
from audit.services import chain_pending
from core import access, refusals
from core.errors import ApplicationError
from governance import exports
from governance.models import AuditExport
from web.pages import page

PAGE_SIZE = 100
FILTER_KEYS = ("model", "version", "actor", "action", "object_type", "outcome", "since", "until")


@page(access.AUDIT_READ)
def audit_page(request):
    if request.method == "POST":
        return _export_in_background(request)
    values = {k: request.GET.get(k, "").strip() for k in FILTER_KEYS}
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

"""/api/v1/audit: the trail as JSON pages or streamed CSV / JSON Lines, and verification.
Compliance officers and administrators only."""

from __future__ import annotations

from datetime import UTC

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.export import export_lines, filtered_events, jsonable_filters
from audit.services import chain_pending
from core import access
from core.errors import InvalidParameterValue

MAX_PAGE = 1000

FILTER_PARAMETERS = [
    OpenApiParameter("model", str, description="registered model name"),
    OpenApiParameter("version", int, description="model version number"),
    OpenApiParameter("actor", str, description="username of the actor"),
    OpenApiParameter("action", str, description="an action, or a prefix ending in '.'"),
    OpenApiParameter("object_type", str),
    OpenApiParameter("outcome", str, enum=["success", "denied", "refused"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="inclusive, ISO 8601"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="exclusive, ISO 8601"),
    OpenApiParameter("after_seq", int, description="page after this sequence number"),
    OpenApiParameter("limit", int, description=f"page size, 1-{MAX_PAGE} (JSON only)"),
    OpenApiParameter(
        "export", str, enum=["csv", "jsonl"], description="stream every matching event as a file"
    ),
]


def _int(params, name: str, limit: int = 2**31) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value < limit:  # what the column holds; a bigger number would not bind
        raise InvalidParameterValue(
            f"{name} must be a whole number from 0 to {limit - 1}, got {raw[:20]!r}."
        )
    return value


def _time(params, name: str):
    return parse_time(params.get(name), name)


def parse_time(raw: str | None, name: str):
    """An ISO 8601 time as an aware UTC datetime (naive means UTC); None when absent."""
    if raw in (None, ""):
        return None
    try:
        value = parse_datetime(raw)
        if value is not None:
            if timezone.is_naive(value):
                value = timezone.make_aware(value, UTC)
            # Stored and compared in UTC; an exotic offset must not reach the database.
            value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise InvalidParameterValue(f"{name} must be an ISO 8601 date-time, got {raw[:40]!r}.")
    return value


def filters_from(params) -> dict:
    return {
        "model": params.get("model") or None,
        "version": _int(params, "version"),
        "actor": params.get("actor") or None,
        "action": params.get("action") or None,
        "object_type": params.get("object_type") or None,
        "outcome": params.get("outcome") or None,
        "since": _time(params, "since"),
        "until": _time(params, "until"),
        "after_seq": _int(params, "after_seq", 2**63),
    }


def export_response(filters: dict, fmt: str) -> StreamingHttpResponse:
    qs = filtered_events(**filters)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    lines = export_lines(qs, fmt=fmt, filters=jsonable_filters(filters))
    kind = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = StreamingHttpResponse(lines, content_type=kind)
    response["Content-Disposition"] = f'attachment; filename="custody-audit-{stamp}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class AuditEventsApi(APIView):
    access_rule = access.AUDIT_READ

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
        summary="Audit events: JSON pages, or a streamed CSV / JSON Lines export",
    )
    def get(self, request):
        filters = filters_from(request.query_params)
        fmt = request.query_params.get("export")
        if fmt:
            if fmt not in ("csv", "jsonl"):
                raise InvalidParameterValue("export must be 'csv' or 'jsonl'.")
            return export_response(filters, fmt)
        limit = _int(request.query_params, "limit") or 100
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidParameterValue(f"limit must be between 1 and {MAX_PAGE}.")
        chain_pending()  # events listed by seq: none may still wait for one
        events = list(filtered_events(**filters)[: limit + 1])
        body = {"events": [selectors.event_payload(e) for e in events[:limit]]}
        if len(events) > limit:
            body["next_after_seq"] = events[limit - 1].seq
        return Response(body)


class AuditVerifyApi(APIView):
    access_rule = access.AUDIT_READ

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Recompute the whole chain against the signed checkpoints, the chain head and "
        "the published anchors (`anchors`: the newest one and its age)",
    )
    def get(self, request):
        return Response(selectors.verify_live_chain().as_dict())

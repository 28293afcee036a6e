"""/api/v1 governance endpoints: policies, transition requests and reviews, comments and
model cards. Thin: validate the input, call a service or selector, shape the answer."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.pagination import OFFSET_HELP, limit_and_offset, limit_help
from governance import policy as rules
from governance.selectors import cards as card_selectors
from governance.selectors import requests as request_selectors
from governance.selectors import reviews as review_selectors
from governance.services import cards as card_services
from governance.services import comments as comment_services
from governance.services import common as common_services
from governance.services import policy as policy_services
from governance.services import requests as request_services
from governance.services import reviews as review_services
from registry import selectors as registry_selectors

MAX_PAGE = 200
LIMIT_HELP = limit_help(MAX_PAGE)


def _outcome(outcome: common_services.Outcome) -> dict:
    body = {
        "applied": outcome.applied,
        "current_stage": outcome.version.current_stage,
        "missing": [m.as_dict() for m in outcome.missing],
    }
    if outcome.request is not None:
        body["request"] = request_selectors.request_payloads([outcome.request])[0]
        body["id"] = outcome.request.pk
        body["status"] = body["request"]["status"]
    return body


class PolicyApi(APIView):
    access_rule = {"GET": access.MODEL_READ, "PUT": access.MODEL_MANAGE}

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A registered model's promotion policy")
    def get(self, request, name: str):
        model = registry_selectors.registered_model_get(name)
        return Response(rules.payload(rules.policy_for(model)))

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        summary="Change the policy (admins: anything; the model's managers: only stricter)",
        description=(
            "Fields: required_tags, require_tags_at_registration, metric_gates "
            '([{"metric","op","value"}]), staging_approvals, production_approvals, '
            "demotion_approvals (approvals for a version to leave Production, to Staging, None "
            "or Archived; null: the same as production_approvals; the archiving of the previous "
            "Production version by an approved promotion needs none), rollback_approvals "
            "(approvals to roll an archived version that was in Production before back into "
            "it; 0: at once), reviewers "
            "(usernames; admins only), exclude_run_author, require_model_card, "
            "protected_aliases, archive_grace_seconds. Fields left out keep their value."
        ),
    )
    def put(self, request, name: str):
        policy = policy_services.policy_update(user=request.user, name=name, data=request.data)
        return Response(rules.payload(policy))


class TransitionRequestInput(serializers.Serializer):
    model = serializers.CharField(max_length=500)
    version = serializers.CharField(max_length=12)
    stage = serializers.CharField(max_length=16)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    archive_existing_versions = serializers.BooleanField(required=False, default=False)


class TransitionRequestsApi(APIView):
    access_rule = access.AUTHENTICATED  # and MODEL_EDIT on the model, checked below

    @extend_schema(
        request=TransitionRequestInput,
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        summary="Ask for a version to enter a stage",
        description=(
            "Applied at once (200, applied=true) when the model's policy needs no approvals "
            "and every condition holds; otherwise the request stays open (201) and `missing` "
            "lists what it still needs, in plain words."
        ),
    )
    def post(self, request):
        data = TransitionRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        model = access.authorize(
            request._request,
            access.MODEL_EDIT,
            {"name": values["model"], "version": values["version"]},
        )
        outcome = request_services.request_transition(
            user=request.user,
            name=model.name,
            version=values["version"],
            stage=values["stage"],
            comment=values.get("comment", ""),
            archive_existing_versions=values["archive_existing_versions"],
        )
        code = status.HTTP_200_OK if outcome.applied else status.HTTP_201_CREATED
        return Response(_outcome(outcome), status=code)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=request_selectors.STATUSES),
            OpenApiParameter("model", str),
            OpenApiParameter("version", int),
            OpenApiParameter("stage", str),
            OpenApiParameter("requester", str),
            OpenApiParameter(
                "queue",
                bool,
                description="the caller's review queue: open requests of the models they "
                "review, not their own (the default when no other filter is given)",
            ),
            OpenApiParameter("limit", int, description=LIMIT_HELP),
            OpenApiParameter("offset", int, description=OFFSET_HELP),
        ],
        responses=OpenApiTypes.OBJECT,
        operation_id="transition_requests_list",
        summary="Transition requests (by default, the caller's review queue)",
    )
    def get(self, request):
        params = request.query_params
        filters = {k: params.get(k) for k in ("status", "model", "stage", "requester", "version")}
        queue = params.get("queue")
        as_queue = queue == "true" or (queue is None and not any(filters.values()))
        qs = request_selectors.requests_list(request.user, **filters, queue=as_queue)
        limit, offset = limit_and_offset(params, max_limit=MAX_PAGE)
        page = list(qs[offset : offset + limit + 1])
        return Response(
            {
                "requests": request_selectors.request_payloads(page[:limit]),
                "next_offset": offset + limit if len(page) > limit else None,
                "queue": as_queue,
            }
        )


class TransitionRequestApi(APIView):
    access_rule = access.AUTHENTICATED  # requests of unreadable models look missing

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One request with checks and history")
    def get(self, request, request_id: int):
        req = request_selectors.request_get(request.user, request_id)
        return Response(request_selectors.request_payloads([req], detail=True)[0])


class ReviewInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class ApproveInput(ReviewInput):
    basis = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="the review screen's `basis` (GET …/review): refused (409) if the source run "
        "or the model card changed since",
    )


class RejectInput(serializers.Serializer):
    reason = serializers.CharField(max_length=10_000, help_text="required: why it is rejected")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class ApproveApi(APIView):
    access_rule = access.AUTHENTICATED  # reviewer eligibility is the service's decision

    @extend_schema(
        request=ApproveInput,
        responses=OpenApiTypes.OBJECT,
        summary="Approve; the approval that completes the quorum applies the transition",
    )
    def post(self, request, request_id: int):
        data = ApproveInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = review_services.approve(
            user=request.user,
            request_id=request_id,
            comment=data.validated_data.get("comment"),
            basis=data.validated_data.get("basis"),
        )
        return Response(_outcome(outcome))


class RejectApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(
        request=RejectInput, responses=OpenApiTypes.OBJECT, summary="Reject, with a reason"
    )
    def post(self, request, request_id: int):
        data = RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = review_services.reject(
            user=request.user,
            request_id=request_id,
            reason=data.validated_data["reason"],
            comment=data.validated_data.get("comment"),
        )
        return Response(_outcome(outcome))


class CancelApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(request=ReviewInput, responses=OpenApiTypes.OBJECT, summary="Cancel (requester)")
    def post(self, request, request_id: int):
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = request_services.cancel(
            user=request.user, request_id=request_id, comment=data.validated_data.get("comment")
        )
        return Response(_outcome(outcome))


class CommentInput(serializers.Serializer):
    text = serializers.CharField(max_length=10_000)


class RequestCommentsApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(
        request=CommentInput, responses={201: OpenApiTypes.OBJECT}, summary="Comment on a request"
    )
    def post(self, request, request_id: int):
        data = CommentInput(data=request.data)
        data.is_valid(raise_exception=True)
        req = request_selectors.request_get(request.user, request_id)
        comment = comment_services.comment_create(
            user=request.user,
            name=req.version.registered_model.name,
            version=req.version.version,
            text=data.validated_data["text"],
            request_id=req.pk,
        )
        return Response(
            {"id": comment.pk, "author": request.user.get_username(), "text": comment.text},
            status=status.HTTP_201_CREATED,
        )


class ReviewScreenApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="Everything a reviewer needs: checks, card, and a comparison with Production",
    )
    def get(self, request, request_id: int):
        req = request_selectors.request_get(request.user, request_id)
        return Response(review_selectors.review_screen(req))


class ModelCardApi(APIView):
    access_rule = {"GET": access.MODEL_READ, "PUT": access.MODEL_EDIT}

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="A version's model card (a draft pre-filled from lineage until first saved)",
    )
    def get(self, request, name: str, version: str):
        mv = registry_selectors.model_version_by_name(name, version)
        card, saved = card_selectors.card_get(mv)
        return Response(card_selectors.card_payload(card, saved))

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=OpenApiTypes.OBJECT,
        summary="Save the card; fields left out keep their value",
    )
    def put(self, request, name: str, version: str):
        card = card_services.card_update(
            user=request.user, name=name, version=version, fields=request.data
        )
        return Response(card_selectors.card_payload(card, True))


class ModelCardMarkdownApi(APIView):
    access_rule = access.MODEL_READ

    @extend_schema(
        responses={(200, "text/markdown"): OpenApiTypes.STR},
        summary="The card as Markdown with Hugging Face YAML front matter",
    )
    def get(self, request, name: str, version: str):
        mv = registry_selectors.model_version_by_name(name, version)
        card, _ = card_selectors.card_get(mv)
        response = HttpResponse(
            card_selectors.card_markdown(card), content_type="text/markdown; charset=utf-8"
        )
        filename = f"{mv.registered_model.name}-v{mv.version}-README.md"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
        response["Content-Disposition"] = f'attachment; filename="{safe}"'
        return response


class ReviewChainApi(APIView):
    access_rule = access.MODEL_READ

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="Is this version approved: every request on it with reviewers, times, comments",
    )
    def get(self, request, name: str, version: str):
        mv = registry_selectors.model_version_by_name(name, version)
        return Response(
            {
                "model": mv.registered_model.name,
                "version": mv.version,
                "current_stage": mv.current_stage,
                "requests": request_selectors.review_chain(mv),
            }
        )


class TimelineApi(APIView):
    access_rule = access.MODEL_READ

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "at",
                str,
                description="an ISO 8601 time (UTC if no offset): also answer what was in each "
                "stage and under each alias at that instant",
            )
        ],
        responses=OpenApiTypes.OBJECT,
        summary="Which version was in Production, Staging and under each alias over time, "
        "who moved it and on whose approval (read from the audit trail)",
    )
    def get(self, request, name: str):
        from audit.api_v1 import parse_time
        from governance.timeline import model_timeline

        model = registry_selectors.registered_model_get(name)
        raw = request.query_params.get("at") or ""
        # A '+' offset arrives as a space when the client did not encode it.
        at = parse_time(raw.strip().replace(" ", "+", 1) if "T" in raw else raw.strip(), "at")
        return Response(model_timeline(model, at))


class AuditExportInput(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "jsonl"])
    model = serializers.CharField(required=False, allow_blank=True)
    version = serializers.IntegerField(required=False, allow_null=True)
    actor = serializers.CharField(required=False, allow_blank=True)
    action = serializers.CharField(required=False, allow_blank=True)
    object_type = serializers.CharField(required=False, allow_blank=True)
    outcome = serializers.CharField(required=False, allow_blank=True)
    since = serializers.DateTimeField(required=False, allow_null=True)
    until = serializers.DateTimeField(required=False, allow_null=True)


class AuditExportsApi(APIView):
    access_rule = access.AUDIT_READ

    @extend_schema(
        request=AuditExportInput,
        responses={202: OpenApiTypes.OBJECT},
        summary="Export the audit trail in the background (a Celery task writes the file to "
        "the artifact store); poll the export for its download link",
    )
    def post(self, request):
        from governance import exports

        data = AuditExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        fmt = values.pop("format")
        filters = {k: (v or None) if not isinstance(v, int) else v for k, v in values.items()}
        export = exports.export_create(user=request.user, filters=filters, fmt=fmt)
        export.refresh_from_db()
        return Response(exports.export_payload(export), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="audit_exports_list",
        summary="Recent audit exports",
    )
    def get(self, request):
        from governance import exports
        from governance.models import AuditExport

        recent = AuditExport.objects.select_related("requested_by").order_by("-pk")[:50]
        return Response({"exports": [exports.export_payload(e) for e in recent]})


class AuditExportApi(APIView):
    access_rule = access.AUDIT_READ

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="One audit export: status, size, hash")
    def get(self, request, export_id: int):
        from governance import exports

        return Response(exports.export_payload(exports.export_get(export_id)))


class AuditExportDownloadApi(APIView):
    access_rule = access.AUDIT_READ

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="Download a finished audit export",
    )
    def get(self, request, export_id: int):
        from django.http import StreamingHttpResponse

        from governance import exports

        export = exports.export_get(export_id)
        response = StreamingHttpResponse(
            exports.export_chunks(export),
            content_type="text/csv" if export.format == "csv" else "application/x-ndjson",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="custody-audit-export-{export.pk}.{export.format}"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        if export.sha256:
            response["X-Content-SHA256"] = export.sha256
        return response

"""/api/v1 registry endpoints: deployments, `models:/` resolution and model permissions."""

from __future__ import annotations

import hashlib
import json

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access, errors, identifiers, process_cache
from core.drf import (
    GRANT_REMOVE_PARAMETERS,
    GrantChangeSerializer,
    GrantSerializer,
    GrantsSerializer,
)
from registry import permissions, resolution, selectors, services
from registry.models import Deployment, ModelVersion


def _resolution(mv: ModelVersion) -> dict:
    return {
        "name": mv.registered_model.name,
        "version": mv.version,
        "stage": mv.current_stage,
        "run_id": mv.run_id or None,
        "model_id": mv.model_id or None,
        "source": mv.source,
        "download_uri": mv.storage_location,
        "last_updated_timestamp": mv.last_updated_timestamp,
    }


class ResolutionSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    stage = serializers.CharField()
    run_id = serializers.CharField(allow_null=True)
    model_id = serializers.CharField(allow_null=True)
    source = serializers.CharField()
    download_uri = serializers.CharField()
    last_updated_timestamp = serializers.IntegerField()


# (model id, parsed URI) -> (JSON body, ETag); any registry change bumps `resolution` in its
# own transaction, and each request reads the versions first: never older than the request.
_RESOLUTIONS = process_cache.Store(process_cache.RESOLUTION, "resolutions")


def _resolve(uri: identifiers.ModelUri) -> tuple[bytes, str]:
    mv = selectors.resolve_model_uri(uri)
    # The ETag changes with any move of the version or of the stage/alias it answers.
    etag = (
        '"'
        + hashlib.sha256(
            f"{uri}|{mv.pk}|{mv.current_stage}|{mv.last_updated_timestamp}".encode()
        ).hexdigest()[:32]
        + '"'
    )
    # Rendered once, as DRF's JSONRenderer renders (compact, UTF-8).
    body = json.dumps(_resolution(mv), separators=(",", ":"), ensure_ascii=False).encode()
    return body, etag


def _resolution_response(request) -> HttpResponse:
    # The access rule first (AUTHENTICATED: a 401 before any 400 about the URI), as DRF's
    # permission check would, then MODEL_READ on the model the URI names.
    access.authorize(request, ResolveApi.access_rule)
    uri = identifiers.model_uri(request.GET.get("uri"))
    # The answer may come from memory: never stale, unless the poller accepts staleness.
    process_cache.refresh_for_serving(request.META.get("HTTP_CACHE_CONTROL"))
    model = access.authorize(request, access.MODEL_READ, {"name": uri.name})
    body, etag = _RESOLUTIONS.get_or_load((model.pk, str(uri)), lambda: _resolve(uri))
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


# What serving layers poll. GET and HEAD are answered without DRF's request wrapping,
# authentication classes and content negotiation (a tenth of the request, docs/performance.md):
# the caller is the one the middleware authenticated, the answer is JSON or a 304 whatever the
# Accept header, errors take the /api/v1 shape through `errors.translate` as DRF's handler
# would. Other methods go through DRF (OPTIONS, 405). (A comment, not a docstring: DRF and
# the OpenAPI schema would publish a docstring as the route's description.)
class ResolveApi(APIView):
    access_rule = access.AUTHENTICATED  # and MODEL_READ on the model named in the URI

    def dispatch(self, request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)
        try:
            response = _resolution_response(request)
        except Exception as exc:
            error = errors.translate(exc)
            if error is None:
                raise
            response = errors.response_for_path(request.path, error)
        response["Allow"] = "GET, HEAD, OPTIONS"
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "uri",
                str,
                required=True,
                description="models:/name/<stage|latest|N> or models:/name@alias",
            ),
            OpenApiParameter(
                "Cache-Control",
                str,
                location=OpenApiParameter.HEADER,
                required=False,
                description=(
                    "`max-stale` or `max-stale=<seconds>`: accept an answer up to that old, "
                    "at most the poll interval (0.5 s by default), most often answered without "
                    "a database query. Without it the answer is never older than the request."
                ),
            ),
        ],
        responses={200: ResolutionSerializer, 304: None},
        summary="Resolve a models:/ URI to one model version (ETag-cached)",
    )
    def get(self, request):
        # Documents the route for the schema; `dispatch` answers GET and HEAD itself.
        return _resolution_response(request._request)


class DeploymentSerializer(serializers.ModelSerializer):
    """`version` is what was recorded; `resolves_to` what `model_uri` resolves to now (null:
    nothing, e.g. no version in that stage), and `drifted` says a current deployment's URI now
    answers another version than the recorded one."""

    # Lists pass `resolutions` in the context (registry.resolution.deployment_resolutions) to
    # stay at a fixed query count; a single deployment resolves itself.
    model = serializers.CharField(source="version.registered_model.name")
    version = serializers.IntegerField(source="version.version")
    resolves_to = serializers.SerializerMethodField()
    drifted = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "endpoint",
            "model",
            "version",
            "model_uri",
            "resolves_to",
            "drifted",
            "since",
            "until",
            "recorded_by",
        ]

    def _resolution(self, deployment: Deployment) -> dict:
        known = self.context.setdefault("resolutions", {})
        if deployment.pk not in known:
            known.update(resolution.deployment_resolutions([deployment]))
        return known[deployment.pk]

    def get_resolves_to(self, deployment: Deployment) -> int | None:
        return self._resolution(deployment)["resolves_to"]

    def get_drifted(self, deployment: Deployment) -> bool:
        return bool(self._resolution(deployment)["drifted"])


class DeploymentsApi(APIView):
    access_rule = access.AUTHENTICATED  # and MODEL_EDIT / MODEL_READ per model, below

    class DeploymentInputSerializer(serializers.Serializer):
        endpoint = serializers.CharField(max_length=255)
        model_uri = serializers.CharField(max_length=1000)

    @extend_schema(
        request=DeploymentInputSerializer,
        responses={201: DeploymentSerializer},
        summary="Record that an endpoint now serves a model URI",
    )
    def post(self, request):
        data = self.DeploymentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uri = identifiers.model_uri(data.validated_data["model_uri"], "model_uri")
        access.authorize(request._request, access.MODEL_EDIT, {"name": uri.name})
        deployment = services.deployment_record(
            endpoint=data.validated_data["endpoint"], model_uri=uri, user=request.user
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("endpoint", str),
            OpenApiParameter("model", str),
            OpenApiParameter("version", int),
            OpenApiParameter("current", bool, description="only open deployments"),
        ],
        responses=DeploymentSerializer(many=True),
        summary="Current and past deployments, per endpoint or per model version",
    )
    def get(self, request):
        qs = (
            Deployment.objects.select_related("version__registered_model")
            .filter(permissions.readable_models_q(request.user, "version__registered_model_id"))
            .order_by("endpoint", "-since")
        )
        params = request.query_params
        if params.get("endpoint"):
            qs = qs.filter(endpoint=params["endpoint"])
        if params.get("model"):
            name = identifiers.model_name(params["model"], "model")
            qs = qs.filter(version__registered_model__name_key=identifiers.name_key(name))
        if params.get("version"):
            qs = qs.filter(version__version=selectors.parse_version(params["version"]))
        if params.get("current") == "true":
            qs = qs.filter(until__isnull=True)
        rows = list(qs[:1000])
        # Every row's live resolution in two queries, not two per row.
        context = {"resolutions": resolution.deployment_resolutions(rows)}
        return Response(DeploymentSerializer(rows, many=True, context=context).data)


class ModelPermissionsApi(APIView):
    access_rule = {
        "GET": access.MODEL_READ,
        "PUT": access.MODEL_MANAGE,
        "POST": access.MODEL_MANAGE,
        "DELETE": access.MODEL_MANAGE,
    }

    @extend_schema(responses=GrantsSerializer, summary="Grants on a registered model")
    def get(self, request, name: str):
        model = selectors.registered_model_get(name)
        return Response({"grants": permissions.grants_payload(model.pk)})

    @extend_schema(
        request=GrantsSerializer,
        responses=GrantsSerializer,
        summary="Replace the grants on a registered model (needs MANAGE)",
    )
    def put(self, request, name: str):
        data = GrantsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = permissions.model_grants_replace(name=name, grants=data.validated_data["grants"])
        return Response({"grants": permissions.grants_payload(model.pk)})

    @extend_schema(
        request=GrantSerializer,
        responses=GrantChangeSerializer,
        summary="Add one grant on a registered model, or change that user's or group's level "
        "(needs MANAGE; the other grants stay)",
    )
    def post(self, request, name: str):
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = permissions.model_grant_put(name=name, grant=dict(data.validated_data))
        model = selectors.registered_model_get(name)
        return Response({"grants": permissions.grants_payload(model.pk), "outcome": outcome})

    @extend_schema(
        parameters=GRANT_REMOVE_PARAMETERS,
        responses=GrantsSerializer,
        summary="Remove one user's or group's grant on a registered model (needs MANAGE)",
    )
    def delete(self, request, name: str):
        permissions.model_grant_remove(
            name=name,
            user=request.query_params.get("user", ""),
            group=request.query_params.get("group", ""),
        )
        model = selectors.registered_model_get(name)
        return Response({"grants": permissions.grants_payload(model.pk)})

"""/api/v1 tracking endpoints: experiment permissions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.drf import (
    GRANT_REMOVE_PARAMETERS,
    GrantChangeSerializer,
    GrantSerializer,
    GrantsSerializer,
)
from tracking import permissions, selectors


class ExperimentPermissionsApi(APIView):
    access_rule = {
        "GET": access.EXPERIMENT_READ,
        "PUT": access.EXPERIMENT_MANAGE,
        "POST": access.EXPERIMENT_MANAGE,
        "DELETE": access.EXPERIMENT_MANAGE,
    }

    @extend_schema(responses=GrantsSerializer, summary="Grants on an experiment")
    def get(self, request, experiment_id: str):
        experiment = selectors.experiment_get(experiment_id)
        return Response({"grants": permissions.grants_payload(experiment.experiment_id)})

    @extend_schema(
        request=GrantsSerializer,
        responses=GrantsSerializer,
        summary="Replace the grants on an experiment (needs MANAGE)",
    )
    def put(self, request, experiment_id: str):
        data = GrantsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = selectors.experiment_get(experiment_id)
        permissions.experiment_grants_replace(
            experiment_id=experiment.experiment_id, grants=data.validated_data["grants"]
        )
        return Response({"grants": permissions.grants_payload(experiment.experiment_id)})

    @extend_schema(
        request=GrantSerializer,
        responses=GrantChangeSerializer,
        summary="Add one grant on an experiment, or change that user's or group's level "
        "(needs MANAGE; the other grants stay)",
    )
    def post(self, request, experiment_id: str):
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = selectors.experiment_get(experiment_id)
        outcome = permissions.experiment_grant_put(
            experiment_id=experiment.experiment_id, grant=dict(data.validated_data)
        )
        return Response(
            {"grants": permissions.grants_payload(experiment.experiment_id), "outcome": outcome}
        )

    @extend_schema(
        parameters=GRANT_REMOVE_PARAMETERS,
        responses=GrantsSerializer,
        summary="Remove one user's or group's grant on an experiment (needs MANAGE)",
    )
    def delete(self, request, experiment_id: str):
        experiment = selectors.experiment_get(experiment_id)
        permissions.experiment_grant_remove(
            experiment_id=experiment.experiment_id,
            user=request.query_params.get("user", ""),
            group=request.query_params.get("group", ""),
        )
        return Response({"grants": permissions.grants_payload(experiment.experiment_id)})

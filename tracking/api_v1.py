"""/api/v1 tracking endpoints: experiment permissions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.drf import GrantsSerializer
from tracking import permissions, selectors


class ExperimentPermissionsApi(APIView):
    access_rule = {"GET": access.EXPERIMENT_READ, "PUT": access.EXPERIMENT_MANAGE}

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

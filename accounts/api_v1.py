"""/api/v1 identity endpoints: the caller's own profile and API tokens (admins see all)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken
from core import access
from core.errors import ResourceDoesNotExist


class TokenOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "username",
            "display_prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked",
        ]

    def get_revoked(self, obj: ApiToken) -> bool:
        return obj.revoked_at is not None


class TokenCreatedSerializer(TokenOutputSerializer):
    token = serializers.CharField(help_text="The token itself; shown only in this response.")

    class Meta(TokenOutputSerializer.Meta):
        fields = [*TokenOutputSerializer.Meta.fields, "token"]


class MeApi(APIView):
    access_rule = access.AUTHENTICATED

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        is_admin = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="The authenticated user and their roles")
    def get(self, request):
        user = request.user
        return Response(
            {
                "username": user.get_username(),
                "roles": sorted(user.groups.values_list("name", flat=True)),
                "is_admin": access.is_admin(user),
            }
        )


class TokenListApi(APIView):
    access_rule = access.AUTHENTICATED

    class TokenCreateInputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        expires_in_days = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=3650
        )

    @extend_schema(
        responses=TokenOutputSerializer(many=True),
        summary="List your API tokens (admins: every user's with ?all=true)",
    )
    def get(self, request):
        tokens = ApiToken.objects.select_related("user").order_by("-created_at")
        if not (request.query_params.get("all") == "true" and access.is_admin(request.user)):
            tokens = tokens.filter(user=request.user)
        return Response(TokenOutputSerializer(tokens, many=True).data)

    @extend_schema(
        request=TokenCreateInputSerializer,
        responses={201: TokenCreatedSerializer},
        summary="Create an API token; the token is shown once",
    )
    def post(self, request):
        data = self.TokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.token_create(
            user=request.user,
            name=data.validated_data["name"],
            expires_in_days=data.validated_data.get("expires_in_days"),
        )
        body = TokenOutputSerializer(token).data
        body["token"] = raw
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    access_rule = access.AUTHENTICATED

    @extend_schema(responses={204: None}, summary="Revoke an API token")
    def delete(self, request, token_id: int):
        token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
        # Someone else's token answers like a missing one: ids reveal nothing.
        if token is None or (
            token.user_id != request.user.pk and not access.is_admin(request.user)
        ):
            raise ResourceDoesNotExist(f"No token with id {token_id}.")
        services.token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)

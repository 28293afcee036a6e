from django.urls import path

from accounts import api_v1

urlpatterns = [
    path("me", api_v1.MeApi.as_view(), name="v1-me"),
    path("tokens", api_v1.TokenListApi.as_view(), name="v1-tokens"),
    path("tokens/<int:token_id>", api_v1.TokenDetailApi.as_view(), name="v1-token-detail"),
]

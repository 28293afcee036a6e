from django.urls import path

from audit import api_v1

urlpatterns = [
    path("audit/events", api_v1.AuditEventsApi.as_view(), name="v1-audit-events"),
    path("audit/verify", api_v1.AuditVerifyApi.as_view(), name="v1-audit-verify"),
]

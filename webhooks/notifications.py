"""Email to people: reviewers who may approve hear of a new request and get one reminder
before it goes stale; requesters hear the decision; a webhook's owner hears that it was
disabled. Each can opt out (NotificationPreference). Sent by Celery after the commit."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import access
from webhooks.models import NotificationPreference, ReviewReminder, Webhook

logger = logging.getLogger(__name__)


def preferences_of(user) -> NotificationPreference:
    existing = NotificationPreference.objects.filter(user=user).first()
    return existing or NotificationPreference(user=user)


@transaction.atomic
def preferences_update(*, user, changes: dict[str, bool]) -> NotificationPreference:
    prefs, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user)
    fields = [
        name for name in ("review_requests", "decisions", "webhook_disabled") if name in changes
    ]
    for name in fields:
        setattr(prefs, name, changes[name])
    if fields:
        prefs.save(update_fields=fields)
    return prefs


def _wants(user, kind: str) -> bool:
    return bool(user.email) and user.is_active and getattr(preferences_of(user), kind)


def _link(path: str) -> str:
    return settings.CUSTODY_BASE_URL.rstrip("/") + path


def _send(users, subject: str, body: str) -> int:
    recipients = sorted({u.email for u in users})
    if not recipients:
        return 0
    # One message per recipient: reviewers do not see each other's addresses.
    for address in recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address])
    return len(recipients)


def possible_reviewers(req):
    """Active users who may approve `req` now (governance's own rule, per user)."""
    from governance import policy as rules
    from governance.approvals import review_refusal

    policy = rules.policy_for(req.version.registered_model)
    candidates = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True) | Q(groups__name__in=[access.REVIEWER_ROLE, access.ADMIN_ROLE])
        )
        .distinct()
    )
    return [user for user in candidates if review_refusal(user, policy, req) is None]


def _request(request_id: int):
    from governance.models import TransitionRequest

    return (
        TransitionRequest.objects.select_related("version__registered_model", "requested_by")
        .filter(pk=request_id)
        .first()
    )


def _describe(req) -> str:
    model = req.version.registered_model.name
    return f"{model} version {req.version.version}: {req.from_stage} → {req.to_stage}"


def review_requested(request_id: int, *, reminder: bool = False) -> int:
    req = _request(request_id)
    if req is None or req.status != req.Status.OPEN:
        return 0
    reviewers = [u for u in possible_reviewers(req) if _wants(u, "review_requests")]
    what = "Reminder: a request still waits for review" if reminder else "Review requested"
    body = (
        f"{req.requested_by.get_username()} asks to move {_describe(req)}.\n\n"
        f"Comment: {req.comment or '(none)'}\n\n"
        f"Review it: {_link(f'/reviews/{req.pk}/')}\n\n"
        "You get this because you may approve it. Turn these emails off with "
        'PUT /api/v1/me/notifications {"review_requests": false}.'
    )
    return _send(reviewers, f"[Custody] {what}: {_describe(req)}", body)


def decision(request_id: int) -> int:
    req = _request(request_id)
    if req is None or req.status == req.Status.OPEN:
        return 0
    # Not whoever decided it themselves (a promotion their policy applied at once).
    users = [req.requested_by, *req.co_requesters.all()]
    users = [u for u in users if u.pk != req.resolved_by_id and _wants(u, "decisions")]
    reason = f"\nReason: {req.status_reason}" if req.status_reason else ""
    body = (
        f"Your request to move {_describe(req)} is {req.status}.{reason}\n\n"
        f"Details: {_link(f'/reviews/{req.pk}/')}\n\n"
        'Turn these emails off with PUT /api/v1/me/notifications {"decisions": false}.'
    )
    return _send(users, f"[Custody] Request {req.status}: {_describe(req)}", body)


def webhook_disabled(webhook_pk: int) -> int:
    webhook = Webhook.objects.select_related("owner").filter(pk=webhook_pk).first()
    if webhook is None or webhook.owner is None or not _wants(webhook.owner, "webhook_disabled"):
        return 0
    body = (
        f"Custody disabled your webhook {webhook.name!r} ({webhook.webhook_id}).\n\n"
        f"Why: {webhook.disabled_reason}\n\n"
        "Its failed deliveries are kept: fix the receiver, set the webhook's status to ACTIVE, "
        f"then replay them (GET /api/v1/webhooks/{webhook.webhook_id}/deliveries)."
    )
    return _send([webhook.owner], f"[Custody] Webhook disabled: {webhook.name}", body)


def send(kind: str, object_id: int) -> int:
    if kind == "review_requested":
        return review_requested(object_id)
    if kind == "decision":
        return decision(object_id)
    if kind == "webhook_disabled":
        return webhook_disabled(object_id)
    raise ValueError(f"unknown notification kind {kind!r}")


def send_review_reminders(*, now=None) -> int:
    """Requests open for CUSTODY_REVIEW_REMINDER_HOURS get one reminder (the row claims it,
    so concurrent runs do not send it twice)."""
    from governance.models import TransitionRequest

    hours = settings.CUSTODY_REVIEW_REMINDER_HOURS
    if hours <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    due = TransitionRequest.objects.filter(
        status=TransitionRequest.Status.OPEN, created_at__lte=cutoff
    ).exclude(pk__in=ReviewReminder.objects.values("request_id"))
    sent = 0
    for request_id in due.values_list("pk", flat=True)[:200]:
        try:
            with transaction.atomic():
                ReviewReminder.objects.create(request_id=request_id)
        except IntegrityError:
            continue  # another run claimed it
        sent += review_requested(request_id, reminder=True)
    return sent

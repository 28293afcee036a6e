"""Email to people (Django's email backend; locmem in tests): reviewers who may approve a
request hear when it opens and once more before it goes stale, requesters hear the decision,
and each can turn these off through /api/v1/me/notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from governance.models import TransitionRequest
from tests.personas import FULL_CARD, to_production_request
from webhooks import notifications

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailboxes(people):
    for name, persona in people.items():
        persona.user.email = f"{name}@example.com"
        persona.user.save(update_fields=["email"])
    return people


def _open_request(people, django_capture_on_commit_callbacks) -> int:
    alice = people["alice"]
    assert alice.put("models/fraud/versions/1/card", FULL_CARD).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        return to_production_request(people)


def _recipients() -> set[str]:
    return {address for message in mail.outbox for address in message.to}


def test_reviewers_who_may_approve_hear_of_a_new_request(
    mailboxes, fraud, django_capture_on_commit_callbacks
):
    request_id = _open_request(mailboxes, django_capture_on_commit_callbacks)
    # Reviewers and admins may approve; the requester, other scientists and the compliance
    # officer may not.
    assert _recipients() == {"rita@example.com", "rob@example.com", "admin@example.com"}
    message = mail.outbox[0]
    assert "Review requested: fraud version 1: Staging → Production" in message.subject
    assert f"/reviews/{request_id}/" in message.body
    assert len(message.to) == 1  # one message each: no one sees the others' addresses


def test_a_reviewer_can_turn_request_emails_off(
    mailboxes, fraud, django_capture_on_commit_callbacks
):
    rita = mailboxes["rita"]
    assert rita.get("me/notifications").json() == {
        "review_requests": True,
        "decisions": True,
        "webhook_disabled": True,
    }
    off = rita.put("me/notifications", {"review_requests": False})
    assert off.status_code == 200 and off.json()["review_requests"] is False
    bad = rita.put("me/notifications", {"review_requests": "sometimes"})
    assert bad.status_code == 400
    _open_request(mailboxes, django_capture_on_commit_callbacks)
    assert "rita@example.com" not in _recipients()
    assert "rob@example.com" in _recipients()


def test_the_requester_hears_the_decision(mailboxes, fraud, django_capture_on_commit_callbacks):
    request_id = _open_request(mailboxes, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        rejected = mailboxes["rita"].post(
            f"transition-requests/{request_id}/reject", {"reason": "metrics too old"}
        )
    assert rejected.status_code == 200, rejected.content
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "rejected" in message.subject and "metrics too old" in message.body


def test_a_request_left_open_gets_one_reminder(
    mailboxes, fraud, django_capture_on_commit_callbacks, settings
):
    settings.CUSTODY_REVIEW_REMINDER_HOURS = 24
    request_id = _open_request(mailboxes, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    assert notifications.send_review_reminders() == 0  # not due yet
    TransitionRequest.objects.filter(pk=request_id).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert notifications.send_review_reminders() == 3
    assert all("Reminder" in m.subject for m in mail.outbox)
    assert notifications.send_review_reminders() == 0  # once

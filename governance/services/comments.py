"""Comments on a model version or one of its transition requests."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from core import access
from core.errors import PermissionDenied, ResourceDoesNotExist
from governance.models import Comment
from governance.models import TransitionRequest as TR
from governance.services.common import checked_text, int_or_none, lock_version
from registry import permissions as model_permissions
from registry.models import ModelVersion, RegisteredModel


@transaction.atomic
def comment_create(*, user, name: str, version: Any, text: Any, request_id: Any = None) -> Comment:
    text = checked_text(text, "comment", required=True)
    if access.is_compliance(user) and not access.is_reviewer(user):
        raise PermissionDenied("Compliance officers read everything and change nothing.")
    model, mv = lock_version(name, version)
    req = None
    if request_id not in (None, ""):
        pk = int_or_none(request_id)
        req = TR.objects.filter(pk=pk, version=mv).first() if pk is not None else None
        if req is None:
            raise ResourceDoesNotExist(
                f"Transition request {request_id} of version {mv.version} of '{name}' not found."
            )
    return add_comment(user, model, mv, req, text)


def add_comment(
    user, model: RegisteredModel, mv: ModelVersion, req: TR | None, text: str
) -> Comment:
    now = timezone.now()
    comment = Comment.objects.create(
        version=mv, request=req, author=user, text=text, created_at=now, updated_at=now
    )
    audit.record(
        action="comment.create",
        object_type="comment",
        object_id=comment.pk,
        object_name=f"{model.name}/{mv.version}",
        model_name=model.name,
        model_version=mv.version,
        after={"text": text, "request": req.pk if req else None},
    )
    return comment


def _own_comment(user, comment_id: Any, verb: str) -> Comment:
    comment = (
        Comment.objects.select_for_update(of=("self",))
        .select_related("version__registered_model", "author")
        .filter(pk=int_or_none(comment_id) or 0)
        .first()
    )
    if (
        comment is None
        or access.RANK[model_permissions.model_level(user, comment.version.registered_model_id)]
        < access.RANK[access.READ]
    ):
        raise ResourceDoesNotExist(f"Comment {comment_id} not found.")
    if comment.author_id != user.pk and not (verb == "delete" and access.is_admin(user)):
        raise PermissionDenied(f"Only the author of comment {comment.pk} can {verb} it.")
    return comment


@transaction.atomic
def comment_update(*, user, comment_id: Any, text: Any) -> Comment:
    text = checked_text(text, "comment", required=True)
    comment = _own_comment(user, comment_id, "edit")
    before = comment.text
    comment.text, comment.updated_at = text, timezone.now()
    comment.save(update_fields=["text", "updated_at"])
    audit.record(
        action="comment.update",
        object_type="comment",
        object_id=comment.pk,
        model_name=comment.version.registered_model.name,
        model_version=comment.version.version,
        before={"text": before},
        after={"text": text},
    )
    return comment


@transaction.atomic
def comment_delete(*, user, comment_id: Any) -> None:
    comment = _own_comment(user, comment_id, "delete")
    audit.record(
        action="comment.delete",
        object_type="comment",
        object_id=comment.pk,
        model_name=comment.version.registered_model.name,
        model_version=comment.version.version,
        before={"text": comment.text, "author": comment.author.get_username()},
    )
    comment.delete()

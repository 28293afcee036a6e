"""Editing a run from its page: rename, description, its own tags, delete and restore. Each
is refused without the right level on the experiment, and each change is audited."""

from __future__ import annotations

import pytest

from accounts import services as accounts
from audit.models import AuditEvent
from tests.web.test_tracking_pages import new_run, parent_tag, signed_in
from tracking import services as tracking
from tracking.models import LifecycleStage, Run, RunTag
from tracking.permissions import experiment_grants_replace

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_id(scientist):
    exp = tracking.experiment_create(name="editable", owner=scientist)
    return new_run(
        exp.experiment_id,
        "before",
        tags=[{"key": "mlflow.source.git.commit", "value": "a" * 40}],
        log_tags=[{"key": "team", "value": "fraud"}],
    )


def tags_of(run_id: str) -> dict[str, str]:
    return dict(RunTag.objects.filter(run_id=run_id).values_list("key", "value"))


def test_owner_renames_describes_and_tags_a_run_and_each_is_audited(scientist, run_id):
    client = signed_in(scientist)
    edit = f"/runs/{run_id}/edit"
    response = client.post(edit, {"action": "rename", "name": "after"}, follow=True)
    assert response.status_code == 200 and "Run renamed." in response.content.decode()
    client.post(edit, {"action": "describe", "description": "Tried a deeper tree.\nWorse."})
    client.post(edit, {"action": "set-tag", "key": "owner", "value": "alice"})
    client.post(edit, {"action": "delete-tag", "key": "team"})
    run = Run.objects.get(pk=run_id)
    tags = tags_of(run_id)
    assert run.name == "after" and tags["mlflow.runName"] == "after"
    assert tags["mlflow.note.content"] == "Tried a deeper tree.\nWorse."
    assert tags["owner"] == "alice" and "team" not in tags
    events = list(AuditEvent.objects.filter(action="run.edit", object_id=run_id).order_by("seq"))
    assert [e.after for e in events] == [
        {"name": "after"},
        {"description": "Tried a deeper tree.\nWorse."},
        {"tags": {"owner": "alice"}},
        {"tags": {"team": None}},
    ]
    assert events[-1].before == {"tags": {"team": "fraud"}}
    page = client.get(f"/runs/{run_id}/").content.decode()
    assert 'id="run-description">Tried a deeper tree.<br>Worse.</p>' in page
    user_tags = page.split('id="user-tags"')[1].split("</table>")[0]
    assert "owner" in user_tags and "mlflow." not in user_tags
    assert "mlflow.source.git.commit" in page.split('id="system-tags"')[1]
    # the same value again changes nothing and records nothing
    client.post(edit, {"action": "set-tag", "key": "owner", "value": "alice"})
    assert AuditEvent.objects.filter(action="run.edit", object_id=run_id).count() == 4


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"action": "set-tag", "key": "mlflow.runName", "value": "x"}, "is a system tag"),
        ({"action": "delete-tag", "key": "mlflow.source.git.commit"}, "is a system tag"),
        ({"action": "rename", "name": "   "}, "cannot be empty"),
        ({"action": "set-tag", "key": "../x", "value": "x"}, "Invalid tag name"),
        ({"action": "delete-tag", "key": "absent"}, "No tag with name"),
    ],
)
def test_bad_edits_are_explained_and_change_nothing(scientist, run_id, form, says):
    before = tags_of(run_id)
    response = signed_in(scientist).post(f"/runs/{run_id}/edit", form, follow=True)
    assert response.status_code == 200 and says in response.content.decode()
    assert tags_of(run_id) == before
    assert not AuditEvent.objects.filter(action="run.edit").exists()


def test_unknown_action_is_a_400(scientist, run_id):
    response = signed_in(scientist).post(f"/runs/{run_id}/edit", {"action": "explode"})
    assert response.status_code == 400 and "allowed: rename" in response.content.decode()
    assert signed_in(scientist).get(f"/runs/{run_id}/edit").status_code == 405


def test_readers_and_editors_get_only_what_their_level_allows(scientist, run_id):
    run = Run.objects.get(pk=run_id)
    reader = accounts.user_create(username="rita", role="data-scientist", password="rita-pw-1")
    editor = accounts.user_create(username="ed", role="data-scientist", password="ed-pw-1")
    experiment_grants_replace(
        experiment_id=run.experiment_id,
        grants=[
            {"user": "alice", "level": "MANAGE"},
            {"user": "rita", "level": "READ"},
            {"user": "ed", "level": "EDIT"},
            {"group": "data-scientist", "level": "NONE"},
        ],
    )
    as_reader = signed_in(reader)
    assert "Edit this run" not in as_reader.get(f"/runs/{run_id}/").content.decode()
    refused = as_reader.post(f"/runs/{run_id}/edit", {"action": "rename", "name": "mine"})
    assert refused.status_code == 403
    as_editor = signed_in(editor)
    page = as_editor.get(f"/runs/{run_id}/").content.decode()
    assert "Edit this run" in page and "Delete run" not in page
    assert as_editor.post(f"/runs/{run_id}/lifecycle", {"action": "delete"}).status_code == 403
    assert Run.objects.get(pk=run_id).name == "before"
    assert Run.objects.get(pk=run_id).lifecycle_stage == LifecycleStage.ACTIVE


def test_delete_and_restore_from_the_run_page(scientist, run_id):
    client = signed_in(scientist)
    run = Run.objects.get(pk=run_id)
    client.post(f"/runs/{run_id}/lifecycle", {"action": "delete"})
    assert Run.objects.get(pk=run_id).lifecycle_stage == LifecycleStage.DELETED
    table = client.get(f"/experiments/{run.experiment_id}/").content.decode()
    assert f'data-run-id="{run_id}"' not in table
    page = client.get(f"/runs/{run_id}/").content.decode()
    assert "Restore run" in page and 'name="action" value="rename"' not in page
    client.post(f"/runs/{run_id}/lifecycle", {"action": "restore"})
    assert Run.objects.get(pk=run_id).lifecycle_stage == LifecycleStage.ACTIVE
    assert list(
        AuditEvent.objects.filter(object_id=run_id, action__startswith="run.")
        .order_by("seq")
        .values_list("action", flat=True)
    )[-2:] == ["run.delete", "run.restore"]


def test_a_parents_children_are_paged_on_its_page(scientist):
    from web.views_tracking import CHILDREN_PAGE

    exp = tracking.experiment_create(name="sweep", owner=scientist)
    parent = new_run(exp.experiment_id, "parent")
    for i in range(CHILDREN_PAGE + 3):
        new_run(exp.experiment_id, f"trial-{i:03d}", tags=parent_tag(parent))
    client = signed_in(scientist)
    first = client.get(f"/runs/{parent}/").content.decode()
    assert f"Child runs 1–{CHILDREN_PAGE} of {CHILDREN_PAGE + 3}" in first
    assert first.count('<tr><td><a href="/runs/') == CHILDREN_PAGE
    second = client.get(f"/runs/{parent}/", {"children": "1"}).content.decode()
    assert f"Child runs {CHILDREN_PAGE + 1}–{CHILDREN_PAGE + 3} of" in second
    assert 'rel="next"' not in second.split('id="children"')[1]

"""A logged model's `mlflow.modelVersions` tag follows the registry (create, delete, rename,
model delete) in the same transaction, and the links show in lineage and on the version page
without revealing versions of models the viewer may not read."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from core.errors import InvalidParameterValue
from registry import services as registry
from tracking import services as tracking
from tracking.models import LoggedModelTag

pytestmark = pytest.mark.django_db

TAG = "mlflow.modelVersions"


@pytest.fixture
def logged(people):
    alice = people["alice"]
    experiment = alice.mlflow("experiments/create", {"name": "lm-links"}).json()["experiment_id"]
    model = alice.mlflow("logged-models", {"experiment_id": experiment, "name": "clf"})
    model_id = model.json()["model"]["info"]["model_id"]
    for name in ("a", "b"):
        assert alice.mlflow("registered-models/create", {"name": name}).status_code == 200
    return model_id


def _register(alice, name: str, model_id: str) -> str:
    created = alice.mlflow("model-versions/create", {"name": name, "source": f"models:/{model_id}"})
    assert created.status_code == 200, created.content
    return created.json()["model_version"]["version"]


def _tag(alice, model_id: str) -> list[dict] | None:
    tags = alice.mlflow(f"logged-models/{model_id}", {}, method="GET").json()["model"]["info"]
    values = [t["value"] for t in tags["tags"] if t["key"] == TAG]
    return json.loads(values[0]) if values else None


def test_the_tag_is_the_registrys_truth_after_each_change(people, logged):
    alice = people["alice"]
    assert _tag(alice, logged) is None
    _register(alice, "a", logged)
    _register(alice, "b", logged)
    _register(alice, "a", logged)
    assert _tag(alice, logged) == [
        {"name": "a", "version": "1"},
        {"name": "b", "version": "1"},
        {"name": "a", "version": "2"},
    ]
    deleted = alice.mlflow("model-versions/delete", {"name": "a", "version": "1"}, "DELETE")
    assert deleted.status_code == 200
    assert _tag(alice, logged) == [{"name": "b", "version": "1"}, {"name": "a", "version": "2"}]
    renamed = alice.mlflow("registered-models/rename", {"name": "b", "new_name": "b2"})
    assert renamed.status_code == 200
    assert _tag(alice, logged) == [{"name": "b2", "version": "1"}, {"name": "a", "version": "2"}]
    assert alice.mlflow("registered-models/delete", {"name": "a"}, "DELETE").status_code == 200
    assert _tag(alice, logged) == [{"name": "b2", "version": "1"}]
    alice.mlflow("model-versions/delete", {"name": "b2", "version": "1"}, "DELETE")
    assert _tag(alice, logged) is None


def test_a_client_rewrite_is_deduplicated_and_kept_as_strings(people, logged):
    alice = people["alice"]
    _register(alice, "a", logged)
    # What mlflow.register_model writes after the server has already linked the version.
    written = alice.mlflow(
        f"logged-models/{logged}/tags",
        {
            "tags": [
                {
                    "key": TAG,
                    "value": '[{"name": "a", "version": 1}, {"name": "a", "version": "1"}]',
                }
            ]
        },
        "PATCH",
    )
    assert written.status_code == 200
    assert _tag(alice, logged) == [{"name": "a", "version": "1"}]
    tracking.logged_model_set_tags(model_id=logged, tags=[{"key": TAG, "value": "not json"}])
    assert LoggedModelTag.objects.get(model_id=logged, key=TAG).value == "not json"


def test_a_failed_registration_leaves_the_tag_alone(people, logged):
    alice = people["alice"]
    _register(alice, "a", logged)
    refused = alice.mlflow(
        "model-versions/create", {"name": "no-such-model", "source": f"models:/{logged}"}
    )
    assert refused.status_code == 404
    assert _tag(alice, logged) == [{"name": "a", "version": "1"}]
    with pytest.raises(InvalidParameterValue):
        registry.model_version_create(name="a", source=f"models:/{logged}", tags=[{"key": ""}])
    assert _tag(alice, logged) == [{"name": "a", "version": "1"}]


def test_lineage_and_the_version_page_show_the_links_the_viewer_may_read(people, logged):
    alice, bob, admin = people["alice"], people["bob"], people["admin"]
    _register(alice, "a", logged)
    _register(alice, "b", logged)
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]}
    assert admin.put("models/b/permissions", grants).status_code == 200

    def node(persona):
        body = persona.get("lineage", {"node": f"logged-model:{logged}", "depth": "0"}).json()
        return body["nodes"][0]

    assert node(alice)["registered_versions"] == ["a/1", "b/1"]
    assert node(bob)["registered_versions"] == ["a/1"]

    def page(user):
        client = Client()
        client.force_login(user)
        return client.get("/models/a/versions/1/").content.decode()

    seen_by_alice, seen_by_bob = page(alice.user), page(bob.user)
    assert f"logged-model:{logged}" in seen_by_alice
    assert "/models/b/versions/1/" in seen_by_alice
    assert f"logged-model:{logged}" in seen_by_bob
    assert "/models/b/versions/1/" not in seen_by_bob

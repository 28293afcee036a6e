"""The logged-model page: MLmodel, flavours, signature, input example, requirements, the
model's files, and the runs and registered versions that use it; the run page links to it,
and ?artifacts=<model name> on the run page points there instead of saying "no artifact"."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.personas import new_run

pytestmark = pytest.mark.django_db

MLMODEL = b"""artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.11.7
  sklearn:
    sklearn_version: 1.5.0
model_id: MODEL_ID
saved_input_example_info:
  artifact_path: input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}, {"type": "string", "name": "country", "required": false}]'
  outputs: '[{"type": "long", "required": true}]'
"""


def test_logged_model_page_shows_what_the_model_is_and_who_uses_it(people, settings, tmp_path):
    settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    alice, bob = people["alice"], people["bob"]
    run_id = new_run(alice)
    experiment_id = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"][
        "experiment_id"
    ]
    created = alice.mlflow(
        "logged-models",
        {"experiment_id": experiment_id, "name": "model", "source_run_id": run_id},
    ).json()["model"]["info"]
    model_id = created["model_id"]
    alice.mlflow("runs/outputs", {"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]})
    prefix = created["artifact_uri"].removeprefix("mlflow-artifacts:/")
    for path, body in (
        ("MLmodel", MLMODEL.replace(b"MODEL_ID", model_id.encode())),
        ("input_example.json", b'{"columns": ["amount", "country"], "data": [[12.5, "DE"]]}'),
        ("requirements.txt", b"mlflow==3.1.0\nscikit-learn==1.5.0\n"),
        ("model.pkl", b"\x80\x04not really"),
    ):
        put = alice.client.put(f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/{path}", body)
        assert put.status_code == 200, put.content
    alice.mlflow("registered-models/create", {"name": "fraud"})
    version = alice.mlflow(
        "model-versions/create", {"name": "fraud", "source": f"models:/{model_id}"}
    )
    assert version.status_code == 200, version.content

    browser = Client()
    browser.force_login(alice.user)
    page = browser.get(f"/logged-models/{model_id}/").content.decode()
    assert '<span class="badge">python_function</span>' in page
    assert '<span class="badge">sklearn</span>' in page
    assert "<td>amount</td><td><code>double</code></td>" in page
    assert '<td>country</td><td><code>string</code> <span class="muted">optional</span>' in page
    assert "[[12.5, &quot;DE&quot;]]" in page and "scikit-learn==1.5.0" in page
    assert f'href="/runs/{run_id}/"' in page and 'href="/models/fraud/versions/1/"' in page
    assert "?artifacts=model.pkl#artifacts" in page  # the model's own files
    assert f'<code>mlflow.pyfunc.load_model("models:/{model_id}")</code>' in page
    assert "by alice</dd>" in page  # the wire's creator_id is alice's user id

    # An id that is also a username (an import keeps MLflow's ids and makes users of them)
    # is shown as it is, never as the name of the user with that pk.
    from accounts.services import user_create

    user_create(username=str(alice.user.pk), role="data-scientist")
    assert f"by {alice.user.pk}</dd>" in browser.get(f"/logged-models/{model_id}/").content.decode()

    run_page = browser.get(f"/runs/{run_id}/").content.decode()
    assert f'href="/logged-models/{model_id}/">model</a>' in run_page
    missing = browser.get(f"/runs/{run_id}/", {"artifacts": "model"}).content.decode()
    assert 'id="artifact-model-hint"' in missing and "No artifact at" not in missing

    outsider = Client()
    outsider.force_login(bob.user)
    from tracking.permissions import experiment_grants_replace

    experiment_grants_replace(
        experiment_id=int(experiment_id),
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    hidden = outsider.get(f"/logged-models/{model_id}/")
    assert hidden.status_code in (403, 404) and "scikit-learn" not in hidden.content.decode()
    assert browser.get("/logged-models/m-doesnotexist/").status_code == 404


def test_a_creator_id_of_other_digits_is_shown_as_it_is(people):
    # An MLflow export's creator_id is free text to the importer, stored as it came; "²" is a
    # digit to str.isdigit() and nothing to int().
    from tracking.models import LoggedModel

    alice = people["alice"]
    run_id = new_run(alice)
    experiment_id = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"][
        "experiment_id"
    ]
    model_id = alice.mlflow("logged-models", {"experiment_id": experiment_id, "name": "m"}).json()[
        "model"
    ]["info"]["model_id"]
    LoggedModel.objects.filter(model_id=model_id).update(creator_id="²")

    got = alice.client.get(f"/api/2.0/mlflow/logged-models/{model_id}")
    assert got.status_code == 200, got.content
    assert "creator_id" not in got.json()["model"]["info"]  # the wire's field is an int64
    browser = Client()
    browser.force_login(alice.user)
    page = browser.get(f"/logged-models/{model_id}/")
    assert page.status_code == 200 and "by ²</dd>" in page.content.decode()


@pytest.mark.parametrize(
    "mlmodel",
    [
        b"artifact_path: model\nsize: " + b"9" * 5000 + b"\n",
        b"[" * 5000 + b"]" * 5000,
        b"signature:\n  inputs: '" + b"[" * 5000 + b"]" * 5000 + b"'\n",
    ],
    ids=["5000-digit int", "nested 5000 deep", "signature nested 5000 deep"],
)
def test_an_mlmodel_no_parser_can_hold_leaves_the_page_up(people, settings, tmp_path, mlmodel):
    # yaml.safe_load raises a plain ValueError for the first and may recurse too deep on the
    # second; the file is whatever its writer uploaded, and every reader opens the page.
    settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    alice = people["alice"]
    run_id = new_run(alice)
    experiment_id = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"][
        "experiment_id"
    ]
    created = alice.mlflow(
        "logged-models", {"experiment_id": experiment_id, "name": "model"}
    ).json()["model"]["info"]
    prefix = created["artifact_uri"].removeprefix("mlflow-artifacts:/")
    put = alice.client.put(f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/MLmodel", mlmodel)
    assert put.status_code == 200, put.content
    browser = Client()
    browser.force_login(alice.user)
    page = browser.get(f"/logged-models/{created['model_id']}/")
    assert page.status_code == 200 and "model" in page.content.decode()

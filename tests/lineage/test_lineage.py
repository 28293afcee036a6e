"""Lineage over HTTP: from an endpoint back to datasets and code, impact of a dataset,
version diffs, declared links, redaction of what the caller may not read, bounded queries
per hop, and the lineage page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from lineage import graph
from lineage.graph import parse_dataset_tokens
from tests.personas import LINEAGE, new_run
from tracking.models import Run, RunTag

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(people, fraud):
    """fraud v1 (run with orders_v2.1, commit b7d9e4a) serves /predict; v2 comes from a run
    trained on orders_v2.1+users_v3.0 at another commit."""
    alice, admin = people["alice"], people["admin"]
    alice.mlflow(
        "runs/log-inputs",
        {
            "run_id": fraud,
            "datasets": [
                {
                    "dataset": {
                        "name": "orders",
                        "digest": "d1g35t",
                        "source_type": "local",
                        "source": "{}",
                    },
                    "tags": [{"key": "mlflow.data.context", "value": "training"}],
                }
            ],
        },
    )
    other = new_run(
        alice,
        {**LINEAGE, "dataset_version": "orders_v2.1+users_v3.0", "git_commit": "c0ffee1"},
        {"val_auc": 0.91},
    )
    alice.mlflow("runs/log-batch", {"run_id": other, "params": [{"key": "depth", "value": "8"}]})
    alice.mlflow("runs/log-batch", {"run_id": fraud, "params": [{"key": "depth", "value": "6"}]})
    ModelVersionRun = __import__("registry.models", fromlist=["ModelVersion"]).ModelVersion
    ModelVersionRun.objects.filter(version=2).update(run_id=other)
    admin.put("models/fraud/policy", {"production_approvals": 0, "require_model_card": False})
    alice.transition(1, "Staging")
    alice.transition(1, "Production")
    assert (
        alice.post(
            "deployments", {"endpoint": "/predict", "model_uri": "models:/fraud/Production"}
        ).status_code
        == 201
    )
    return {"v1_run": fraud, "v2_run": other}


def ids(body) -> set[str]:
    return {n["id"] for n in body["nodes"]}


def test_dataset_version_values_name_several_datasets():
    assert parse_dataset_tokens("orders_v2.1+users_v3.0") == [("orders", "v2.1"), ("users", "v3.0")]
    assert parse_dataset_tokens("snapshot-2026") == [("snapshot-2026", "")]
    assert parse_dataset_tokens(" a_v1 + ") == [("a", "v1")]
    assert parse_dataset_tokens("events_v2_clean_v1.3") == [("events_v2_clean", "v1.3")]


def test_dataset_names_with_versions_and_at_signs_inside(people, served):
    alice, carl = people["alice"], people["carl"]
    run = new_run(alice, {"dataset_version": "events_v2_clean_v1.3"})
    dataset = {"name": "team@corp", "digest": "abc123", "source_type": "local", "source": "{}"}
    alice.mlflow("runs/log-inputs", {"run_id": run, "datasets": [{"dataset": dataset}]})
    up = carl.get("lineage", {"node": f"run:{run}", "direction": "up", "depth": "1"}).json()
    assert {"dataset:events_v2_clean@v1.3", "dataset:team@corp@abc123"} <= ids(up)
    for node in ("dataset:events_v2_clean@v1.3", "dataset:team@corp@abc123"):
        down = carl.get("lineage", {"node": node, "direction": "down", "depth": "1"}).json()
        assert f"run:{run}" in ids(down), node
        facts = next(n for n in down["nodes"] if n["id"] == node)
        assert facts["name"] in ("events_v2_clean", "team@corp"), facts


def test_from_an_endpoint_back_to_its_datasets_and_code(people, served):
    body = (
        people["carl"]
        .get("lineage", {"node": "deployment:/predict", "direction": "up", "depth": "5"})
        .json()
    )
    nodes = ids(body)
    for expected in (
        "deployment:/predict",
        "version:fraud/1",
        f"run:{served['v1_run']}",
        "dataset:orders@v2.1",
        "dataset:orders@d1g35t",
        "commit:b7d9e4a",
    ):
        assert expected in nodes, expected
    assert f"run:{served['v2_run']}" not in nodes  # v2 is not deployed
    kinds = {(e["from"], e["to"]): e["kind"] for e in body["edges"]}
    assert kinds[("version:fraud/1", "deployment:/predict")] == "serves"
    assert kinds[("dataset:orders@d1g35t", f"run:{served['v1_run']}")] == "training"
    assert kinds[("commit:b7d9e4a", f"run:{served['v1_run']}")] == "code"
    version = next(n for n in body["nodes"] if n["id"] == "version:fraud/1")
    assert version["stage"] == "Production"
    deployment = next(n for n in body["nodes"] if n["id"] == "deployment:/predict")
    assert deployment["serving"] == "fraud v1" and deployment["root"] is True
    # What the recorded URI answers now, beside what was recorded.
    assert deployment["model_uri"] == "models:/fraud/Production"
    assert deployment["resolves_to"] == 1 and deployment["drifted"] is False
    people["alice"].transition(2, "Staging")
    assert people["alice"].transition(2, "Production").status_code == 200
    again = people["carl"].get("lineage", {"node": "deployment:/predict", "depth": "1"}).json()
    moved = next(n for n in again["nodes"] if n["id"] == "deployment:/predict")
    assert (moved["serving"], moved["resolves_to"], moved["drifted"]) == ("fraud v1", 2, True)


def test_impact_of_a_dataset(people, served):
    carl = people["carl"]
    body = carl.get("lineage/impact", {"dataset": "orders", "version": "v2.1"}).json()
    assert {n["run_id"] for n in body["runs"]} == {served["v1_run"], served["v2_run"]}
    assert {(v["model"], v["version"], v["stage"]) for v in body["versions"]} == {
        ("fraud", 1, "Production"),
        ("fraud", 2, "None"),
    }
    assert [d["endpoint"] for d in body["deployments"]] == ["/predict"]
    users = carl.get("lineage/impact", {"dataset": "users", "version": "v3.0"}).json()
    assert [v["version"] for v in users["versions"]] == [2] and users["deployments"] == []
    every = carl.get("lineage/impact", {"dataset": "orders"}).json()
    assert len(every["runs"]) == 2
    assert carl.get("lineage/impact", {"dataset": "nothing"}).json()["runs"] == []


def busy_dataset(run_id: str, count: int) -> None:
    """`count` more runs (bulk inserts) in the experiment of `run_id`, trained on orders_v2.1."""
    experiment_id = Run.objects.get(run_id=run_id).experiment_id
    runs = Run.objects.bulk_create(
        Run(run_id=f"bulk{i:028d}", experiment_id=experiment_id, start_time=i, artifact_uri="x")
        for i in range(count)
    )
    RunTag.objects.bulk_create(
        RunTag(run=run, key="dataset_version", value="orders_v2.1") for run in runs
    )


def test_a_busy_dataset_still_reports_every_version_and_deployment(people, served, monkeypatch):
    monkeypatch.setattr(graph, "CHUNK", 1000)  # several IN lists per hop, as past 5,000 ids
    busy_dataset(served["v1_run"], 2500)
    carl = people["carl"]
    body = carl.get("lineage/impact", {"dataset": "orders", "version": "v2.1"}).json()
    assert {(v["model"], v["version"]) for v in body["versions"]} == {("fraud", 1), ("fraud", 2)}
    assert [d["endpoint"] for d in body["deployments"]] == ["/predict"]
    assert body["runs_total"] == 2502 and body["truncated"] is True
    assert len(body["runs"]) == graph.MAX_NODES
    assert all("run_id" in run for run in body["runs"])
    around = carl.get("lineage", {"node": "dataset:orders@v2.1", "direction": "down", "depth": "3"})
    assert around.status_code == 200
    cut = around.json()
    assert cut["truncated"] is True and len(cut["nodes"]) == graph.MAX_NODES
    assert all(e["from"] in ids(cut) and e["to"] in ids(cut) for e in cut["edges"])


class CountedNodes(list):
    passes = 0

    def __iter__(self):
        CountedNodes.passes += 1
        return super().__iter__()


def test_the_svg_reads_the_node_list_a_fixed_number_of_times(people, served):
    from lineage.svg import render

    body = people["carl"].get("lineage", {"node": "deployment:/predict", "direction": "up"})
    result = body.json()
    few = CountedNodes(result["nodes"])
    render({**result, "nodes": few})
    passes_few, CountedNodes.passes = CountedNodes.passes, 0
    many = CountedNodes(
        result["nodes"]
        + [{"id": f"dataset:d{i}", "kind": "dataset", "label": f"d{i}"} for i in range(300)]
    )
    svg = render({**result, "nodes": many})
    assert svg.count('class="node"') == len(many)
    assert CountedNodes.passes == passes_few, "one pass over the nodes per node drawn"


def test_diff_of_two_versions(people, served):
    body = people["carl"].get("models/fraud/versions/1/diff/2").json()
    assert body["commit"] == {"a": "b7d9e4a", "b": "c0ffee1", "changed": True}
    assert "users@v3.0" in body["datasets"]["only_in_b"]
    assert "orders@v2.1" in body["datasets"]["both"]
    assert body["params"]["changed"]["depth"] == {"from": "6", "to": "8"}
    auc = body["metrics"]["changed"]["val_auc"]
    assert auc["from"] == 0.95 and auc["to"] == 0.91 and round(auc["delta"], 2) == -0.04
    assert body["approvals"]["a"][-1]["to_stage"] == "Production"
    assert body["approvals"]["b"] == []
    assert people["carl"].get("models/fraud/versions/1/diff/9").status_code == 404


def test_unreadable_nodes_are_redacted(people, served):
    grants = {
        "grants": [
            {"user": "alice", "level": "MANAGE"},
            {"group": "data-scientist", "level": "NONE"},
        ]
    }
    people["admin"].put("models/fraud/permissions", grants)
    body = (
        people["bob"]
        .get("lineage", {"node": f"run:{served['v1_run']}", "direction": "down", "depth": "3"})
        .json()
    )
    redacted = [n for n in body["nodes"] if n.get("redacted")]
    # The hidden version is a leaf: the walk does not go on through it to its endpoint.
    assert {n["kind"] for n in redacted} == {"version"}
    assert all(set(n) == {"id", "kind", "redacted", "label"} for n in redacted)
    text = str(body)
    assert "fraud" not in text and "/predict" not in text


def test_runs_of_hidden_experiments_leak_nothing_through_visible_nodes(people, served):
    alice, bob, admin = people["alice"], people["bob"], people["admin"]
    hidden_run, visible_run = served["v2_run"], served["v1_run"]
    visible_exp = str(Run.objects.get(run_id=visible_run).experiment_id)
    made = alice.mlflow(
        "logged-models",
        {"experiment_id": visible_exp, "name": "m", "source_run_id": hidden_run},
    )
    model_id = made.json()["model"]["info"]["model_id"]
    # the run moves to an experiment of its own (runs of the fixture share one)
    secret = alice.mlflow("experiments/create", {"name": "secret"}).json()["experiment_id"]
    Run.objects.filter(run_id=hidden_run).update(experiment_id=int(secret))
    hidden_exp = Run.objects.get(run_id=hidden_run).experiment_id
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]}
    assert admin.put(f"experiments/{hidden_exp}/permissions", grants).status_code == 200
    version = bob.get("lineage", {"node": "version:fraud/2", "depth": "0"}).json()["nodes"][0]
    assert version["run_id"] is None and version["run_id_redacted"] is True
    logged = bob.get("lineage", {"node": f"logged-model:{model_id}", "depth": "0"}).json()
    assert logged["nodes"][0]["source_run"] is None
    assert logged["nodes"][0]["source_run_redacted"] is True
    diff = bob.get("models/fraud/versions/1/diff/2").json()
    assert diff["b"]["run_id"] is None and diff["b"]["run_redacted"] is True
    assert diff["a"]["run_id"] == visible_run and diff["a"]["run_redacted"] is False
    assert diff["commit"]["b"] is None and diff["datasets"]["only_in_b"] == []
    assert "depth" in diff["params"]["removed"] and "val_auc" in diff["metrics"]["removed"]
    # Deeper walks stop at the hidden run: nothing it used shows through it, on the API,
    # the impact query or the page.
    walk = bob.get("lineage", {"node": "version:fraud/2", "direction": "up", "depth": "4"}).json()
    assert [n["kind"] for n in walk["nodes"] if n.get("redacted")] == ["run"]
    impact = bob.get("lineage/impact", {"dataset": "users", "version": "v3.0"}).json()
    assert impact["versions"] == [] and impact["deployments"] == []
    client = Client()
    client.force_login(bob.user)
    graph_page = client.get("/lineage/", {"node": "version:fraud/2", "direction": "up"})
    text = str(diff) + str(version) + str(logged) + str(walk) + graph_page.content.decode()
    for secret in (hidden_run, "c0ffee1", "users@v3.0", "0.91"):
        assert secret not in text, secret
    # alice reads both experiments and still sees everything
    full = alice.get("models/fraud/versions/1/diff/2").json()
    assert full["b"]["run_id"] == hidden_run and full["commit"]["b"] == "c0ffee1"
    page = client.get("/models/fraud/versions/1/diff/2/").content.decode()
    assert "c0ffee1" not in page and hidden_run not in page


def test_traversal_costs_a_fixed_number_of_queries_per_hop(people, served):
    alice, carl = people["alice"], people["carl"]
    params = {"dataset": "orders", "version": "v2.1"}
    with CaptureQueriesContext(connection) as few:
        carl.get("lineage/impact", params)
    for _ in range(8):
        new_run(alice, LINEAGE)
    with CaptureQueriesContext(connection) as many:
        body = carl.get("lineage/impact", params).json()
    assert len(body["runs"]) == 10 and body["runs_total"] == 10 and not body["truncated"]
    assert len(many) == len(few), len(many)


def test_every_run_keeps_its_metrics(people, served):
    alice, carl = people["alice"], people["carl"]
    tags = {"dataset_version": "metrics_v1"}
    busy = new_run(alice, tags, {f"m{i:02d}": float(i) for i in range(50)})
    quiet = new_run(alice, tags, {"val_auc": 0.9})
    body = carl.get("lineage", {"node": "dataset:metrics@v1", "direction": "down", "depth": "1"})
    runs = {n["id"]: n for n in body.json()["nodes"]}
    assert runs[f"run:{quiet}"]["metrics"] == {"val_auc": 0.9}
    assert runs[f"run:{busy}"]["metrics"] == {f"m{i:02d}": float(i) for i in range(10)}


def test_a_run_that_used_a_logged_model(people, served):
    alice, carl = people["alice"], people["carl"]
    experiment = str(Run.objects.get(run_id=served["v1_run"]).experiment_id)
    made = alice.mlflow(
        "logged-models",
        {"experiment_id": experiment, "name": "base", "source_run_id": served["v1_run"]},
    )
    model_id = made.json()["model"]["info"]["model_id"]
    tuned = new_run(alice)
    used = alice.mlflow("runs/log-inputs", {"run_id": tuned, "models": [{"model_id": model_id}]})
    assert used.status_code == 200, used.content
    edge = {"from": f"logged-model:{model_id}", "to": f"run:{tuned}", "kind": "input"}
    up = carl.get("lineage", {"node": f"run:{tuned}", "direction": "up", "depth": "1"}).json()
    assert edge in up["edges"]
    down = carl.get("lineage", {"node": f"logged-model:{model_id}", "direction": "down"}).json()
    assert edge in down["edges"]
    impact = carl.get("lineage/impact", {"dataset": "orders", "version": "v2.1"}).json()
    assert tuned in {r["run_id"] for r in impact["runs"]}


def test_stored_names_never_break_a_traversal(people, served):
    alice, carl = people["alice"], people["carl"]
    long_name = "x" * 700
    run = new_run(alice, {"dataset_version": f"bad\nname_v1+{long_name}_v2"})
    body = carl.get("lineage", {"node": f"run:{run}", "direction": "both", "depth": "2"})
    assert body.status_code == 200, body.content
    assert {"dataset:bad\nname@v1", f"dataset:{long_name}@v2"} <= ids(body.json())
    down = carl.get("lineage", {"node": f"dataset:{long_name}@v2", "direction": "down"})
    assert down.status_code == 200 and f"run:{run}" in ids(down.json())
    newline = carl.get("lineage", {"node": "dataset:bad\nname@v1", "direction": "down"})
    assert f"run:{run}" in ids(newline.json())


def test_commits_match_however_they_were_written(people, served):
    alice, bob, carl = people["alice"], people["bob"], people["carl"]
    spaced = new_run(alice, {"git_commit": "  B7D9E4A0C0DE  "})
    mlflow_tag = new_run(alice, {"mlflow.source.git.commit": "B7D9E4FF"})
    new_run(alice, {"git_commit": "b7d9aaaa"})
    body = carl.get("lineage", {"node": "commit:b7d9e4", "direction": "down", "depth": "1"}).json()
    runs = {n["id"] for n in body["nodes"] if n["kind"] == "run"}
    assert runs == {f"run:{served['v1_run']}", f"run:{spaced}", f"run:{mlflow_tag}"}
    assert {e["from"] for e in body["edges"]} == {"commit:b7d9e4"}
    up = carl.get("lineage", {"node": f"run:{spaced}", "direction": "up", "depth": "1"}).json()
    assert "commit:b7d9e4a0c0de" in ids(up)
    clicked = carl.get("lineage", {"node": "commit:b7d9e4a0c0de", "direction": "down"}).json()
    assert f"run:{spaced}" in ids(clicked)
    upper = carl.get(
        "lineage", {"node": "commit: B7D9E4", "direction": "down", "depth": "1"}
    ).json()
    assert "commit:b7d9e4" in ids(upper) and len(ids(upper)) == 4
    short = carl.get("lineage", {"node": "commit:b7d", "direction": "down"})
    assert short.status_code == 400 and "at least 4 characters" in short.json()["error"]["message"]
    for prefix in ("commit:b7d9", "commit:b7d9e4a"):
        link = {"source": "dataset:src@v1", "target": prefix, "kind": "built"}
        assert bob.post("lineage/links", link).status_code == 201
    both = carl.get("lineage", {"node": "dataset:src@v1", "direction": "down", "depth": "2"})
    edges = {(e["from"], e["to"]) for e in both.json()["edges"]}
    fraud_run = f"run:{served['v1_run']}"
    assert {("commit:b7d9", fraud_run), ("commit:b7d9e4a", fraud_run)} <= edges


def test_bad_requests_are_explained(people, served):
    carl = people["carl"]
    for params, words in (
        ({"node": "model:fraud"}, "Invalid node id"),
        ({"node": "version:fraud"}, "version:<model>/<number>"),
        ({"node": "run:x", "depth": "11"}, "depth must be from 0 to 10"),
        ({"node": "run:x", "direction": "sideways"}, "direction must be"),
        ({"node": "run:x", "depth": "deep"}, "whole number"),
    ):
        response = carl.get("lineage", params)
        assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_declared_links(people, served):
    alice = people["alice"]
    link = {
        "source": "dataset:raw_orders@v7",
        "target": "dataset:orders@v2.1",
        "kind": "derived_from",
    }
    assert alice.post("lineage/links", link).status_code == 201
    assert alice.post("lineage/links", link).status_code == 400
    assert AuditEvent.objects.filter(action="lineage.link.create").count() == 1
    body = alice.get(
        "lineage", {"node": f"run:{served['v1_run']}", "direction": "up", "depth": "2"}
    ).json()
    assert "dataset:raw_orders@v7" in ids(body)
    refused = people["bob"].post(
        "lineage/links",
        {"source": f"run:{served['v1_run']}", "target": "dataset:x@v1", "kind": "wrote"},
    )
    assert refused.status_code == 403


def test_who_may_declare_a_link(people, served):
    alice, bob, carl = people["alice"], people["bob"], people["carl"]
    experiment = str(Run.objects.get(run_id=served["v1_run"]).experiment_id)
    made = alice.mlflow(
        "logged-models",
        {"experiment_id": experiment, "name": "m", "source_run_id": served["v1_run"]},
    )
    model_id = made.json()["model"]["info"]["model_id"]
    for target in ("deployment:/predict", f"logged-model:{model_id}", "version:fraud/1"):
        link = {"source": "dataset:poison@v1", "target": target, "kind": "fed"}
        assert bob.post("lineage/links", link).status_code == 403, target  # READ only
        assert carl.post("lineage/links", link).status_code == 403, target
        assert alice.post("lineage/links", link).status_code == 201, target
    between_data = {"source": "dataset:a@v1", "target": "commit:C0FFEE1", "kind": "built"}
    refused = carl.post("lineage/links", between_data)
    assert refused.status_code == 403 and "change nothing" in refused.json()["error"]["message"]
    assert bob.post("lineage/links", between_data).status_code == 201
    missing = {"source": "dataset:a@v1", "target": "deployment:/nowhere", "kind": "fed"}
    assert alice.post("lineage/links", missing).status_code == 404
    impact = carl.get("lineage/impact", {"dataset": "poison", "version": "v1"}).json()
    assert [d["endpoint"] for d in impact["deployments"]] == ["/predict"]


def test_listing_and_removing_links(people, served):
    alice, bob, carl, admin = people["alice"], people["bob"], people["carl"], people["admin"]
    ids_of = {}
    for source, target, who in (
        ("dataset:raw@v1", "dataset:orders@v2.1", bob),
        ("dataset:raw@v1", "version:fraud/1", alice),
        ("dataset:other@v1", "dataset:orders@v2.1", bob),
    ):
        created = who.post("lineage/links", {"source": source, "target": target, "kind": "fed"})
        ids_of[target if source == "dataset:raw@v1" else source] = created.json()["id"]
    listed = carl.get("lineage/links", {"node": "dataset:raw@v1"}).json()
    assert [(x["target"], x["created_by"]) for x in listed["links"]] == [
        ("dataset:orders@v2.1", "bob"),
        ("version:fraud/1", "alice"),
    ]
    assert len(carl.get("lineage/links").json()["links"]) == 3
    assert carl.get("lineage/links", {"node": "nonsense"}).status_code == 400
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]}
    admin.put("models/fraud/permissions", grants)
    hidden = bob.get("lineage/links", {"node": "dataset:raw@v1"}).json()["links"]
    assert [x["target"] for x in hidden] == ["dataset:orders@v2.1"]  # fraud is hidden from bob
    assert (
        bob.client.delete(f"/api/v1/lineage/links/{ids_of['version:fraud/1']}").status_code == 404
    )
    # bob's link between datasets: alice did not make it and has no EDIT on a dataset
    mine = ids_of["dataset:orders@v2.1"]
    assert alice.client.delete(f"/api/v1/lineage/links/{mine}").status_code == 403
    assert carl.client.delete(f"/api/v1/lineage/links/{mine}").status_code == 403
    assert bob.client.delete(f"/api/v1/lineage/links/{mine}").status_code == 204
    assert bob.client.delete(f"/api/v1/lineage/links/{mine}").status_code == 404
    # alice has EDIT on fraud, so she may remove a link to it that bob made
    admin.put("models/fraud/permissions", {"grants": [{"user": "alice", "level": "MANAGE"}]})
    theirs = bob.post(
        "lineage/links", {"source": "dataset:z@v1", "target": "version:fraud/2", "kind": "fed"}
    )
    assert theirs.status_code == 403  # bob has READ on fraud
    by_admin = admin.post(
        "lineage/links", {"source": "dataset:z@v1", "target": "version:fraud/2", "kind": "fed"}
    ).json()["id"]
    assert alice.client.delete(f"/api/v1/lineage/links/{by_admin}").status_code == 204
    other = ids_of["dataset:other@v1"]
    assert admin.client.delete(f"/api/v1/lineage/links/{other}").status_code == 204
    deleted = AuditEvent.objects.filter(action="lineage.link.delete").order_by("pk")
    assert [e.before["source"] for e in deleted] == [
        "dataset:raw@v1",
        "dataset:z@v1",
        "dataset:other@v1",
    ]
    assert deleted[0].before["created_by"] == "bob" and deleted[0].actor_username == "bob"


def test_the_lineage_page(people, served):
    client = Client()
    client.force_login(people["carl"].user)
    page = client.get("/lineage/", {"node": "deployment:/predict"}).content.decode()
    assert "<svg" in page and 'href="/lineage/?node=version:fraud/1"' in page
    assert 'data-node="dataset:orders@v2.1"' in page
    bad = client.get("/lineage/", {"node": "nonsense"}).content.decode()
    assert 'id="lineage-error"' in bad and "Invalid node id" in bad
    run_page = client.get(f"/runs/{served['v1_run']}/").content.decode()
    assert f"/lineage/?node=run:{served['v1_run']}" in run_page and "fraud v1" in run_page


def test_the_diff_page(people, served):
    client = Client()
    client.force_login(people["carl"].user)
    picked = client.get("/models/fraud/versions/2/diff/", {"other": "1"})
    assert picked.status_code == 302 and picked["Location"] == "/models/fraud/versions/1/diff/2/"
    page = client.get(picked["Location"]).content.decode()
    for expected in (
        "<code>b7d9e4a</code> → <code>c0ffee1</code>",
        "users@v3.0",
        'id="diff-metrics"',
        "val_auc",
        "-0.0400",
        "depth",
    ):
        assert expected in page, expected
    assert client.get("/models/fraud/versions/1/diff/", {"other": "x"}).status_code == 400


def test_link_pages_skip_hidden_links_before_cutting(people, served, monkeypatch):
    from lineage import api_v1

    alice, bob, admin = people["alice"], people["bob"], people["admin"]
    monkeypatch.setattr(api_v1, "MAX_LINKS", 2)
    for n in range(3):  # the oldest links end at a model bob will not see
        link = {"source": f"dataset:raw{n}@v1", "target": "version:fraud/1", "kind": "fed"}
        assert alice.post("lineage/links", link).status_code == 201
    for n in range(3):
        link = {"source": f"dataset:raw{n}@v1", "target": "dataset:orders@v2.1", "kind": "fed"}
        assert bob.post("lineage/links", link).status_code == 201
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]}
    admin.put("models/fraud/permissions", grants)
    first = bob.get("lineage/links").json()
    assert [x["source"] for x in first["links"]] == ["dataset:raw0@v1", "dataset:raw1@v1"]
    assert first["truncated"] is True and first["next_after_id"]
    second = bob.get("lineage/links", {"after_id": first["next_after_id"]}).json()
    assert [x["source"] for x in second["links"]] == ["dataset:raw2@v1"]
    assert second["truncated"] is False and second["next_after_id"] is None
    assert bob.get("lineage/links", {"after_id": "²"}).status_code == 400

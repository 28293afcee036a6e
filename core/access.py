"""The central access decision. Every route declares one of these rules; `authorize` is the
only function that decides whether a request may proceed.

The rules name what the request touches and how (read, edit, manage). Identity and
per-object permissions plug in here (the identity-and-access issue); until then every
declared rule admits the request and an undeclared rule is a programming error."""

from __future__ import annotations

from django.http import HttpRequest

PUBLIC = "public"
AUTHENTICATED = "authenticated"
EXPERIMENT_READ = "experiment.read"
EXPERIMENT_EDIT = "experiment.edit"
EXPERIMENT_MANAGE = "experiment.manage"
EXPERIMENT_CREATE = "experiment.create"
RUN_READ = "run.read"
RUN_EDIT = "run.edit"
RUN_MANAGE = "run.manage"
ARTIFACT_READ = "artifact.read"
ARTIFACT_EDIT = "artifact.edit"
ARTIFACT_MANAGE = "artifact.manage"
MODEL_READ = "model.read"
MODEL_EDIT = "model.edit"
MODEL_MANAGE = "model.manage"
MODEL_CREATE = "model.create"

RULES = frozenset(
    {
        PUBLIC,
        AUTHENTICATED,
        EXPERIMENT_READ,
        EXPERIMENT_EDIT,
        EXPERIMENT_MANAGE,
        EXPERIMENT_CREATE,
        RUN_READ,
        RUN_EDIT,
        RUN_MANAGE,
        ARTIFACT_READ,
        ARTIFACT_EDIT,
        ARTIFACT_MANAGE,
        MODEL_READ,
        MODEL_EDIT,
        MODEL_MANAGE,
        MODEL_CREATE,
    }
)


def authorize(request: HttpRequest, rule: str) -> None:
    if rule not in RULES:
        raise RuntimeError(f"Route declares unknown access rule {rule!r}")

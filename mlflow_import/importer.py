"""Importing a running MLflow server, phase by phase: experiments, runs (with every metric
point and dataset input), logged models, artifacts, users, registered models with their
versions, stages and aliases; then a verification of what Custody holds against what was
read.

Every write goes through the owning app's import service (tracking, registry, accounts), so
it is validated, audited (`*.import` events naming the source server) and visible to the
lineage graph like any other. What was brought in is mapped in `ImportedObject` in the same
transaction, so a second import writes only what changed at the source and an interrupted
one resumes: batches that committed are not fetched again."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import urllib3
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import services as accounts
from core.errors import ApplicationError
from core.mlflow_api import name_identity
from core.storage import clean_artifact_path, get_artifact_store
from mlflow_import.models import ImportedObject, ImportSource
from mlflow_import.source import PROXY_SCHEME, MlflowSource, SourceError, fingerprint
from registry import services as registry
from registry.models import ModelVersion, RegisteredModel, RegisteredModelAlias
from registry.source import resolve_source
from tracking import services as tracking
from tracking.models import Experiment, LoggedModel, Metric, Run

Kind = ImportedObject.Kind
User = get_user_model()
RUN_BATCH = 200

# Phase progress: a callable (phase name, total or None) giving a context manager whose
# value advances by n items.
Progress = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


def _no_progress(name: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


def history_digest(points: Iterable[tuple[str, int, int, float | None]]) -> str:
    """One digest of a run's metric history: the set of (key, step, timestamp, value) points,
    NaN written as "nan" (None stands for NaN from the database)."""
    rows = sorted(
        {
            (key, int(step), int(ts), "nan" if value is None or math.isnan(value) else repr(value))
            for key, step, ts, value in points
        }
    )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _kv(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {i["key"]: i.get("value", "") for i in items or []}


def _int(value: Any, default: int = 0) -> int:
    return int(value) if value not in (None, "") else default


@dataclass
class PhaseStats:
    items: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = self.items / self.seconds if self.seconds else 0.0
        return {
            "items": self.items,
            "seconds": round(self.seconds, 2),
            "per_second": round(rate, 1),
        }


@dataclass
class Report:
    server: str
    dry_run: bool
    started_at: str = ""
    finished_at: str = ""
    # kind -> {"source": n, "custody": n, "imported": n, "unchanged": n, "skipped": n}
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, kind: str, what: str, n: int = 1) -> None:
        self.counts[kind][what] = self.counts[kind].get(what, 0) + n

    def skip(self, kind: str, key: str, reason: str) -> None:
        self.skipped.append({"kind": kind, "id": key, "reason": reason})
        self.count(kind, "skipped")

    @property
    def ok(self) -> bool:
        return all(not c.get("mismatched") for c in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "verified": self.ok,
            "counts": dict(self.counts),
            "checks": self.checks,
            "skipped": self.skipped,
            "notes": self.notes,
            "throughput": self.throughput,
        }


class HashingReader:
    """A file-like source stream that takes the sha256 of what is read through it."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self.stream.read(n if n and n > 0 else 1024 * 1024)
        self.digest.update(chunk)
        return chunk


@dataclass
class ArtifactOwner:
    key: str  # run id or logged model id (both unique across experiments)
    source_uri: str  # the owner's artifact root at the source
    run_id: str | None  # for roots outside the proxy, read through the run artifact API
    target_root: str  # the owner's artifact directory in Custody's store


class Importer:
    def __init__(
        self,
        source: MlflowSource,
        *,
        experiments: list[str] | None = None,
        models: list[str] | None = None,
        dry_run: bool = False,
        workers: int = 8,
        progress: Progress = _no_progress,
    ):
        self.source = source
        self.select_experiments = experiments
        self.select_models = models
        self.dry_run = dry_run
        self.workers = workers
        self.progress = progress
        self.report = Report(server=source.server, dry_run=dry_run)
        self.provenance = {"server": source.server}
        self.state: ImportSource | None = None
        self.listed_experiments: list[str] = []
        self.experiments: dict[str, Experiment] = {}  # source experiment id -> Custody's
        self.run_ids: set[str] = set()  # source runs selected
        self.owners: list[ArtifactOwner] = []
        self.users: set[str] = set()
        self.model_links: tuple[list[tuple[str, str, int]], list[tuple[str, str]]] = ([], [])
        self.source_versions: dict[str, list[dict[str, Any]]] = {}
        self.source_aliases: dict[str, dict[str, int]] = {}
        # model name -> {version: the stage it is to have here}
        self.effective_stages: dict[str, dict[str, str]] = {}

    # -- bookkeeping

    def _mapped(self, kind: str, keys: Iterable[str]) -> dict[str, ImportedObject]:
        keys = list(keys)
        found: dict[str, ImportedObject] = {}
        for start in range(0, len(keys), 1000):
            for obj in ImportedObject.objects.filter(
                source=self.state, kind=kind, source_key__in=keys[start : start + 1000]
            ):
                found[obj.source_key] = obj
        return found

    def _map(self, kind: str, rows: list[dict[str, Any]]) -> None:
        now = timezone.now()
        ImportedObject.objects.bulk_create(
            [ImportedObject(source=self.state, kind=kind, imported_at=now, **row) for row in rows],
            update_conflicts=True,
            unique_fields=["source", "kind", "source_key"],
            update_fields=["target_key", "fingerprint", "checksum", "size", "imported_at"],
            batch_size=1000,
        )

    def _phase(self, name: str, fn: Callable[[], int]) -> None:
        started = time.monotonic()
        items = fn()
        self.report.throughput[name] = PhaseStats(items, time.monotonic() - started).as_dict()

    # -- the whole import

    def run(self) -> Report:
        self.report.started_at = timezone.now().isoformat()
        if not self.dry_run:
            self.state, _ = ImportSource.objects.get_or_create(server=self.source.server)
            self.state.options = {
                "experiments": self.select_experiments,
                "models": self.select_models,
            }
            self.state.started_at = timezone.now()
            self.state.save(update_fields=["options", "started_at"])
        else:
            self.state = ImportSource.objects.filter(server=self.source.server).first()
        self._phase("experiments", self.import_experiments)
        self._phase("runs", self.import_runs)
        self._phase("logged_models", self.import_logged_models)
        if not self.dry_run:
            self._phase("artifacts", self.import_artifacts)
        self._phase("registered_models", self.import_registry)
        if not self.dry_run:
            self._phase("users", self.import_users)
            self._phase("verify", self.verify)
            self.state.finished_at = timezone.now()
            self.state.save(update_fields=["finished_at"])
        self.report.finished_at = timezone.now().isoformat()
        return self.report

    # -- experiments

    def _selected_experiment(self, exp: dict[str, Any]) -> bool:
        if not self.select_experiments:
            return True
        return exp["experiment_id"] in self.select_experiments or exp["name"] in set(
            self.select_experiments
        )

    def import_experiments(self) -> int:
        listed = [e for e in self.source.experiments() if self._selected_experiment(e)]
        self.listed_experiments = [e["experiment_id"] for e in listed]
        mapped = (
            self._mapped(Kind.EXPERIMENT, [e["experiment_id"] for e in listed])
            if self.state
            else {}
        )
        with self.progress("experiments", len(listed)) as advance:
            for exp in listed:
                self.report.count("experiments", "source")
                self._import_experiment(exp, mapped.get(exp["experiment_id"]))
                advance(1)
        return len(listed)

    def _import_experiment(self, exp: dict[str, Any], mapping: ImportedObject | None) -> None:
        source_id = exp["experiment_id"]
        fp = fingerprint(exp)
        existing = None
        if mapping is not None:
            existing = Experiment.objects.filter(pk=mapping.target_key).first()
        if existing is not None and mapping.fingerprint == fp:
            self.experiments[source_id] = existing
            self.report.count("experiments", "unchanged")
            return
        merge = False
        if existing is None:
            # An experiment of the same name already here (MLflow's and Custody's "Default")
            # receives the source's runs.
            existing = Experiment.objects.filter(name_key=name_identity(exp["name"])).first()
            merge = existing is not None
        if self.dry_run:
            self.report.count("experiments", "to_import")
            if existing is not None:
                self.experiments[source_id] = existing
            return
        keep_id = (
            source_id.isdigit()
            and int(source_id) < 2**63
            and not Experiment.objects.filter(pk=int(source_id)).exists()
        )
        try:
            with transaction.atomic():
                experiment = tracking.experiment_import(
                    experiment_id=int(source_id) if keep_id and existing is None else None,
                    name=exp["name"],
                    lifecycle_stage=exp.get("lifecycle_stage", "active"),
                    creation_time=_int(exp.get("creation_time")),
                    last_update_time=_int(exp.get("last_update_time")),
                    tags=_kv(exp.get("tags")),
                    source={**self.provenance, "experiment_id": source_id},
                    existing=existing,
                    merge=merge,
                )
                self._map(
                    Kind.EXPERIMENT,
                    [
                        {
                            "source_key": source_id,
                            "target_key": str(experiment.experiment_id),
                            "fingerprint": fp,
                        }
                    ],
                )
        except ApplicationError as exc:
            self.report.skip("experiments", source_id, exc.message)
            return
        if str(experiment.experiment_id) != source_id:
            self.report.notes.append(
                {
                    "kind": "experiment",
                    "id": source_id,
                    "note": f"imported as experiment {experiment.experiment_id}"
                    + (" (merged by name)" if merge else " (the source's id was taken)"),
                }
            )
        self.experiments[source_id] = experiment
        self.report.count("experiments", "imported")

    # -- runs

    def import_runs(self) -> int:
        listed: list[tuple[Experiment | None, dict[str, Any]]] = []
        for source_id in self.listed_experiments:
            experiment = self.experiments.get(source_id)
            if experiment is None and not self.dry_run:
                continue  # skipped, and said why
            for page in self.source.run_pages(source_id):
                listed += [(experiment, r) for r in page]
        total = 0
        with self.progress("runs", len(listed)) as advance:
            by_experiment: dict[int | None, list] = defaultdict(list)
            for experiment, run in listed:
                by_experiment[experiment.pk if experiment else None].append((experiment, run))
            for group in by_experiment.values():
                experiment = group[0][0]
                runs = [r for _, r in group]
                for start in range(0, len(runs), RUN_BATCH):
                    batch = runs[start : start + RUN_BATCH]
                    self._import_run_batch(experiment, batch)
                    advance(len(batch))
                    total += len(batch)
        return total

    def _import_run_batch(self, experiment: Experiment | None, runs: list[dict[str, Any]]) -> None:
        ids = [r["info"]["run_id"] for r in runs]
        self.report.count("runs", "source", len(runs))
        mapped = self._mapped(Kind.RUN, ids) if self.state else {}
        taken = set(
            Run.objects.filter(run_id__in=[i for i in ids if i not in mapped]).values_list(
                "run_id", flat=True
            )
        )
        todo, replace = [], set()
        for run in runs:
            info = run["info"]
            run_id = info["run_id"]
            self._collect_run(experiment, run)
            if run_id in taken:
                self.report.skip("runs", run_id, "a run with this id already exists in Custody")
                self.run_ids.discard(run_id)
                continue
            fp = fingerprint(run)
            if run_id in mapped and mapped[run_id].fingerprint == fp:
                self.report.count("runs", "unchanged")
                continue
            if run_id in mapped:
                replace.add(run_id)
            todo.append((run, fp))
        if self.dry_run:
            self.report.count("runs", "to_import", len(todo))
            return
        if not todo:
            return
        histories = self._histories([run for run, _ in todo])
        imported, rows = [], []
        for run, fp in todo:
            info, data = run["info"], run.get("data", {})
            run_id = info["run_id"]
            points = histories[run_id]
            imported.append(
                tracking.ImportedRun(
                    run_id=run_id,
                    name=info.get("run_name") or _kv(data.get("tags")).get("mlflow.runName", ""),
                    user_id=info.get("user_id", ""),
                    status=info.get("status", "FINISHED"),
                    start_time=_int(info.get("start_time")),
                    end_time=_int(info.get("end_time"), None) if info.get("end_time") else None,
                    lifecycle_stage=info.get("lifecycle_stage", "active"),
                    # MLflow does not say when a run was deleted: its end (or start) stands in.
                    deleted_time=(
                        _int(info.get("end_time") or info.get("start_time"))
                        if info.get("lifecycle_stage") == "deleted"
                        else None
                    ),
                    params=_kv(data.get("params")),
                    tags=_kv(data.get("tags")),
                    metrics=points,
                    datasets=[
                        (
                            {
                                k: str(d.get("dataset", {}).get(k) or "")
                                for k in (
                                    "name",
                                    "digest",
                                    "source_type",
                                    "source",
                                    "schema",
                                    "profile",
                                )
                            },
                            _kv(d.get("tags")),
                        )
                        for d in (run.get("inputs") or {}).get("dataset_inputs", [])
                    ],
                )
            )
            rows.append(
                {
                    "source_key": run_id,
                    "target_key": run_id,
                    "fingerprint": fp,
                    "checksum": history_digest(
                        (p["key"], _int(p.get("step")), _int(p["timestamp"]), float(p["value"]))
                        for p in points
                    ),
                    "size": len(
                        {(p["key"], p.get("step"), p["timestamp"], str(p["value"])) for p in points}
                    ),
                }
            )
        with transaction.atomic():
            tracking.runs_import(
                experiment=experiment, runs=imported, replace=replace, source=self.provenance
            )
            self._map(Kind.RUN, rows)
        self.report.count("runs", "imported", len(imported))

    def _collect_run(self, experiment: Experiment | None, run: dict[str, Any]) -> None:
        info = run["info"]
        run_id = info["run_id"]
        self.run_ids.add(run_id)
        if info.get("user_id"):
            self.users.add(info["user_id"])
        outputs, inputs = self.model_links
        for out in (run.get("outputs") or {}).get("model_outputs", []):
            outputs.append((run_id, out["model_id"], _int(out.get("step"))))
        for inp in (run.get("inputs") or {}).get("model_inputs", []):
            inputs.append((run_id, inp["model_id"]))
        if experiment is not None:
            self.owners.append(
                ArtifactOwner(
                    key=run_id,
                    source_uri=info.get("artifact_uri", ""),
                    run_id=run_id,
                    target_root=f"{experiment.experiment_id}/{run_id}/artifacts",
                )
            )

    def _histories(self, runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Every point of every metric of these runs, fetched in parallel."""
        wanted = [
            (r["info"]["run_id"], m["key"])
            for r in runs
            for m in {m["key"]: m for m in r.get("data", {}).get("metrics", [])}.values()
        ]
        histories: dict[str, list[dict[str, Any]]] = {r["info"]["run_id"]: [] for r in runs}
        with ThreadPoolExecutor(self.workers) as pool:
            futures = {
                pool.submit(self.source.metric_history, run_id, key): run_id
                for run_id, key in wanted
            }
            for future in as_completed(futures):
                histories[futures[future]] += future.result()
        return histories

    # -- logged models

    def import_logged_models(self) -> int:
        if not self.listed_experiments:
            return 0
        listed = self.source.logged_models(self.listed_experiments)
        mapped = (
            self._mapped(Kind.LOGGED_MODEL, [m["info"]["model_id"] for m in listed])
            if self.state
            else {}
        )
        taken = set(
            LoggedModel.objects.filter(
                model_id__in=[
                    m["info"]["model_id"] for m in listed if m["info"]["model_id"] not in mapped
                ]
            ).values_list("model_id", flat=True)
        )
        groups: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        with self.progress("logged models", len(listed)) as advance:
            for model in listed:
                info = model["info"]
                model_id = info["model_id"]
                self.report.count("logged_models", "source")
                experiment = self.experiments.get(info["experiment_id"])
                if info.get("creator_id"):
                    self.users.add(info["creator_id"])
                if model_id in taken:
                    self.report.skip(
                        "logged_models",
                        model_id,
                        "a logged model with this id already exists in Custody",
                    )
                    advance(1)
                    continue
                if experiment is not None:
                    self.owners.append(
                        ArtifactOwner(
                            key=model_id,
                            source_uri=info.get("artifact_uri", ""),
                            run_id=None,
                            target_root=f"{experiment.experiment_id}/models/{model_id}/artifacts",
                        )
                    )
                if experiment is None and not self.dry_run:
                    self.report.skip("logged_models", model_id, "its experiment was not imported")
                    advance(1)
                    continue
                fp = fingerprint(model)
                if model_id in mapped and mapped[model_id].fingerprint == fp:
                    self.report.count("logged_models", "unchanged")
                    advance(1)
                    continue
                groups[info["experiment_id"]].append((model, fp))
                advance(1)
            if self.dry_run:
                self.report.count(
                    "logged_models", "to_import", sum(len(g) for g in groups.values())
                )
                return len(listed)
            for source_exp, models in groups.items():
                experiment = self.experiments[source_exp]
                replace = {
                    m["info"]["model_id"] for m, _ in models if m["info"]["model_id"] in mapped
                }
                with transaction.atomic():
                    tracking.logged_models_import(
                        experiment=experiment,
                        models=[self._logged_model_fields(m) for m, _ in models],
                        replace=replace,
                        source=self.provenance,
                    )
                    self._map(
                        Kind.LOGGED_MODEL,
                        [
                            {
                                "source_key": m["info"]["model_id"],
                                "target_key": m["info"]["model_id"],
                                "fingerprint": fp,
                            }
                            for m, fp in models
                        ],
                    )
                self.report.count("logged_models", "imported", len(models))
            outputs, inputs = self.model_links
            tracking.run_model_links_import(outputs=outputs, inputs=inputs)
        return len(listed)

    @staticmethod
    def _logged_model_fields(model: dict[str, Any]) -> dict[str, Any]:
        info = model["info"]
        return {
            "model_id": info["model_id"],
            "name": info.get("name", ""),
            "model_type": info.get("model_type", ""),
            "source_run_id": info.get("source_run_id", ""),
            "status": info.get("status", "LOGGED_MODEL_READY"),
            "status_message": info.get("status_message", ""),
            "creation_timestamp": _int(info.get("creation_timestamp_ms")),
            "last_updated_timestamp": _int(info.get("last_updated_timestamp_ms")),
            "creator_id": info.get("creator_id", ""),
            "tags": _kv(info.get("tags")),
            "params": _kv((model.get("data") or {}).get("params")),
        }

    # -- artifacts

    def import_artifacts(self) -> int:
        owners = [o for o in self.owners if o.source_uri]
        files: list[tuple[ArtifactOwner, str, int]] = []
        with (
            self.progress("artifact listings", len(owners)) as advance,
            ThreadPoolExecutor(self.workers) as pool,
        ):
            futures = {
                pool.submit(self.source.list_artifacts, o.source_uri, o.run_id): o for o in owners
            }
            for future in as_completed(futures):
                owner = futures[future]
                try:
                    files += [(owner, path, size) for path, size in future.result()]
                except SourceError as exc:
                    self.report.skip("artifacts", owner.key, str(exc))
                advance(1)
        self.report.count("artifacts", "source", len(files))
        self.report.count("artifact_bytes", "source", sum(size for _, _, size in files))
        mapped = self._mapped(Kind.ARTIFACT, [f"{o.key}/{p}" for o, p, _ in files])
        todo = []
        for owner, path, size in files:
            key = f"{owner.key}/{path}"
            if key in mapped and mapped[key].size == size and mapped[key].checksum:
                self.report.count("artifacts", "unchanged")
            else:
                todo.append((owner, path, size))
        store = get_artifact_store()
        done: list[dict[str, Any]] = []
        # At most workers + 1 files in flight: the copies cannot run ahead of their mapping
        # (a slow commit), so an interrupted import copies at most 10 + workers + 1 again.
        waiting = iter(todo)
        futures: dict[Future, tuple[ArtifactOwner, str, int]] = {}
        with (
            self.progress("artifact files", len(todo)) as advance,
            ThreadPoolExecutor(self.workers) as pool,
        ):

            def submit_next() -> None:
                item = next(waiting, None)
                if item is not None:
                    futures[pool.submit(self._copy_file, store, *item)] = item

            for _ in range(self.workers + 1):
                submit_next()
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    owner, path, _ = futures.pop(future)
                    try:
                        done.append(future.result())
                    except (SourceError, ApplicationError, OSError) as exc:
                        reason = exc.message if isinstance(exc, ApplicationError) else str(exc)
                        self.report.skip("artifacts", f"{owner.key}/{path}", reason)
                    advance(1)
                    # Mapped every few files, so an interrupted import copies few again.
                    if len(done) >= 10:
                        self._map(Kind.ARTIFACT, done)
                        self.report.count("artifacts", "imported", len(done))
                        done = []
                    submit_next()
        self._map(Kind.ARTIFACT, done)
        self.report.count("artifacts", "imported", len(done))
        return len(todo)

    def _copy_file(self, store, owner: ArtifactOwner, path: str, size: int) -> dict[str, Any]:
        target = clean_artifact_path(f"{owner.target_root}/{path}")
        for attempt in range(3):
            try:
                reader = HashingReader(
                    self.source.open_artifact(owner.source_uri, owner.run_id, path)
                )
                written = store.put(target, reader)
                break
            except urllib3.exceptions.HTTPError as exc:
                # The source dropped the connection mid-file; the store kept nothing of it.
                if attempt == 2:
                    raise SourceError(f"{owner.key}/{path}: {exc}") from None
        return {
            "source_key": f"{owner.key}/{path}",
            "target_key": target,
            "fingerprint": str(size),
            "checksum": reader.digest.hexdigest(),
            "size": written,
        }

    # -- users

    def import_users(self) -> int:
        names = sorted(self.users)
        mapped = self._mapped(Kind.USER, names)
        with self.progress("users", len(names)) as advance:
            for name in names:
                self.report.count("users", "source")
                if name in mapped:
                    self.report.count("users", "unchanged")
                else:
                    try:
                        with transaction.atomic():
                            user, created = accounts.user_import(
                                username=name, source=self.provenance
                            )
                            self._map(
                                Kind.USER,
                                [
                                    {
                                        "source_key": name,
                                        "target_key": str(user.pk),
                                        "fingerprint": "",
                                    }
                                ],
                            )
                        self.report.count("users", "created_inactive" if created else "existing")
                    except ApplicationError as exc:
                        self.report.skip("users", name, exc.message)
                advance(1)
        return len(names)

    # -- registry

    def import_registry(self) -> int:
        listed = self.source.registered_models()
        if self.select_models:
            listed = [m for m in listed if m["name"] in set(self.select_models)]
        mapped = (
            self._mapped(Kind.REGISTERED_MODEL, [m["name"] for m in listed]) if self.state else {}
        )
        with self.progress("registered models", len(listed)) as advance:
            for model in listed:
                self.report.count("registered_models", "source")
                versions = sorted(
                    self.source.model_versions(model["name"]), key=lambda v: int(v["version"])
                )
                self.source_versions[model["name"]] = versions
                self.source_aliases[model["name"]] = {
                    a["alias"]: int(a["version"]) for a in model.get("aliases", [])
                }
                self.effective_stages[model["name"]] = self._effective_stages(versions)
                self.report.count("model_versions", "source", len(versions))
                self.report.count("aliases", "source", len(model.get("aliases", [])))
                for v in versions:
                    if v.get("user_id"):
                        self.users.add(v["user_id"])
                fp = fingerprint(
                    {k: v for k, v in model.items() if k != "latest_versions"}
                    | {"versions": versions}
                )
                mapping = mapped.get(model["name"])
                existing = (
                    RegisteredModel.objects.filter(pk=mapping.target_key).first()
                    if mapping
                    else None
                )
                if existing is not None and mapping.fingerprint == fp:
                    self.report.count("registered_models", "unchanged")
                    self.report.count("model_versions", "unchanged", len(versions))
                elif self.dry_run:
                    self.report.count("registered_models", "to_import")
                else:
                    self._import_model(model, versions, existing, fp)
                advance(1)
        return len(listed)

    def _import_model(self, model: dict[str, Any], versions: list[dict], existing, fp: str) -> None:
        name = model["name"]
        try:
            with transaction.atomic():
                custody_model = registry.registered_model_import(
                    name=name,
                    description=model.get("description", ""),
                    tags=_kv(model.get("tags")),
                    creation_timestamp=_int(model.get("creation_timestamp")),
                    last_updated_timestamp=_int(model.get("last_updated_timestamp")),
                    source={**self.provenance, "name": name},
                    existing=existing,
                )
                # The version entering Production is written last, after any version
                # leaving Production here has left it.
                stages = self.effective_stages[name]
                mapped = self._mapped(
                    Kind.MODEL_VERSION, [f"{name}/{v['version']}" for v in versions]
                )
                for v in sorted(versions, key=lambda v: stages[v["version"]] == "Production"):
                    self._import_version(custody_model, v, stages[v["version"]], mapped)
                registry.model_aliases_import(
                    model=custody_model,
                    aliases=self.source_aliases[name],
                    source={**self.provenance, "name": name},
                )
                self._map(
                    Kind.REGISTERED_MODEL,
                    [{"source_key": name, "target_key": str(custody_model.pk), "fingerprint": fp}],
                )
        except ApplicationError as exc:
            self.report.skip("registered_models", name, exc.message)
            return
        self.report.count("registered_models", "imported")

    def _translate_source(self, uri: str) -> str:
        """A version's source as Custody knows it: proxied paths follow their experiment to
        its Custody id; runs:/ and models:/ keep their ids."""
        if uri.startswith(PROXY_SCHEME):
            exp, _, rest = uri[len(PROXY_SCHEME) :].lstrip("/").partition("/")
            experiment = self.experiments.get(exp)
            if experiment is not None:
                return f"{PROXY_SCHEME}{experiment.experiment_id}/{rest}"
        return uri

    def _effective_stages(self, versions: list[dict[str, Any]]) -> dict[str, str]:
        """Each version's stage at the source, except that of several Production versions
        (MLflow allows that; Custody holds one) only the highest-numbered stays Production and
        the others become Archived, each with a note in the report."""
        stages = {v["version"]: v.get("current_stage") or "None" for v in versions}
        production = sorted((int(n) for n, s in stages.items() if s == "Production"), reverse=True)
        for number in production[1:]:
            stages[str(number)] = "Archived"
            self.report.notes.append(
                {
                    "kind": "model_version",
                    "id": f"{versions[0]['name']}/{number}",
                    "note": f"in Production at the source, as is version {production[0]}; "
                    "Custody holds one Production version per model, so it was imported as "
                    "Archived",
                }
            )
        return stages

    def _import_version(
        self, model: RegisteredModel, v: dict[str, Any], stage: str, mapped: dict
    ) -> None:
        key = f"{v['name']}/{v['version']}"
        fp = fingerprint({"version": v, "stage": stage})
        if key in mapped and mapped[key].fingerprint == fp:
            self.report.count("model_versions", "unchanged")
            return
        try:
            with transaction.atomic():
                resolved = resolve_source(
                    self._translate_source(v.get("source", "")),
                    run_id=v.get("run_id") or None,
                    model_id=v.get("model_id") or None,
                )
                _, note = registry.model_version_import(
                    model=model,
                    version=int(v["version"]),
                    stage=stage,
                    description=v.get("description", ""),
                    source_uri=resolved.source,
                    storage_location=resolved.storage_location,
                    run_id=resolved.run_id,
                    model_id=resolved.model_id,
                    run_link=v.get("run_link", ""),
                    user_id=v.get("user_id", ""),
                    creation_timestamp=_int(v.get("creation_timestamp")),
                    last_updated_timestamp=_int(v.get("last_updated_timestamp")),
                    tags=_kv(v.get("tags")),
                    source={
                        **self.provenance,
                        "version": key,
                        "stage": v.get("current_stage"),
                        "last_updated_timestamp": _int(v.get("last_updated_timestamp")),
                    },
                )
                self._map(
                    Kind.MODEL_VERSION,
                    [{"source_key": key, "target_key": key, "fingerprint": fp}],
                )
        except ApplicationError as exc:
            self.report.skip("model_versions", key, f"source {v.get('source')!r}: {exc.message}")
            return
        if note:
            self.report.notes.append({"kind": "model_version", "id": key, "note": note})
        self.report.count("model_versions", "imported")

    # -- verification

    def verify(self) -> int:
        report = self.report
        experiments = {str(e.pk) for e in self.experiments.values()}
        report.count(
            "experiments", "custody", Experiment.objects.filter(pk__in=experiments).count()
        )
        run_ids = sorted(self.run_ids)
        report.count("runs", "custody", self._count(Run, "run_id", run_ids))
        report.checks["metric_histories"] = self._verify_histories(run_ids)
        models = [o.key for o in self.owners if o.run_id is None]
        report.count("logged_models", "custody", self._count(LoggedModel, "model_id", models))
        report.checks["artifacts"] = self._verify_artifacts()
        report.checks["registry"] = self._verify_registry()
        report.count("users", "custody", User.objects.filter(username__in=self.users).count())
        return len(run_ids)

    @staticmethod
    def _count(model, field_name: str, keys: list[str]) -> int:
        return sum(
            model.objects.filter(**{f"{field_name}__in": keys[i : i + 1000]}).count()
            for i in range(0, len(keys), 1000)
        )

    def _verify_histories(self, run_ids: list[str]) -> dict[str, Any]:
        mapped = self._mapped(Kind.RUN, run_ids)
        compared, mismatched, points = 0, [], 0
        with self.progress("verify metric histories", len(mapped)) as advance:
            keys = sorted(mapped)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                found: dict[str, list] = defaultdict(list)
                for run_id, key, step, ts, value, is_nan in Metric.objects.filter(
                    run_id__in=chunk
                ).values_list("run_id", "key", "step", "timestamp", "value", "is_nan"):
                    found[run_id].append((key, step, ts, None if is_nan else value))
                for run_id in chunk:
                    compared += 1
                    points += len(found[run_id])
                    if history_digest(found[run_id]) != mapped[run_id].checksum:
                        mismatched.append(run_id)
                advance(len(chunk))
        self.report.count("metric_points", "source", sum(m.size or 0 for m in mapped.values()))
        self.report.count("metric_points", "custody", points)
        return {
            "compared": compared,
            "mismatched": mismatched[:100],
            "mismatched_count": len(mismatched),
        }

    def _verify_artifacts(self) -> dict[str, Any]:
        owners = {o.key for o in self.owners}
        rows = [
            m
            for m in ImportedObject.objects.filter(source=self.state, kind=Kind.ARTIFACT)
            if m.source_key.split("/", 1)[0] in owners
        ]
        store = get_artifact_store()

        def stored_sha(path: str) -> str | None:
            try:
                chunks, _ = store.open(path)
            except ApplicationError:
                return None
            digest = hashlib.sha256()
            for chunk in chunks:
                digest.update(chunk)
            return digest.hexdigest()

        mismatched = []
        with (
            self.progress("verify artifacts", len(rows)) as advance,
            ThreadPoolExecutor(self.workers) as pool,
        ):
            futures = {pool.submit(stored_sha, m.target_key): m for m in rows}
            for future in as_completed(futures):
                m = futures[future]
                if future.result() != m.checksum:
                    mismatched.append(m.source_key)
                advance(1)
        self.report.count("artifacts", "custody", len(rows) - len(mismatched))
        self.report.count("artifact_bytes", "custody", sum(m.size or 0 for m in rows))
        return {
            "compared": len(rows),
            "mismatched": mismatched[:100],
            "mismatched_count": len(mismatched),
        }

    def _verify_registry(self) -> dict[str, Any]:
        skipped = {s["id"] for s in self.report.skipped}
        mismatched = []
        versions = aliases = models = 0
        for name, source_versions in self.source_versions.items():
            model = RegisteredModel.objects.filter(name=name).first()
            if model is None and name in skipped:
                continue
            if model is None:
                mismatched.append(f"{name}: not in Custody")
                continue
            models += 1
            here = {
                mv.version: mv
                for mv in ModelVersion.objects.filter(registered_model=model, deleted=False)
            }
            for v in source_versions:
                mv = here.get(int(v["version"]))
                if mv is None and f"{name}/{v['version']}" in skipped:
                    continue
                if mv is None:
                    mismatched.append(f"{name}/{v['version']}: not in Custody")
                    continue
                versions += 1
                expected = self.effective_stages[name][v["version"]]
                if mv.current_stage != expected:
                    mismatched.append(
                        f"{name}/{v['version']}: stage {mv.current_stage}, expected {expected}"
                    )

            here_aliases = dict(
                RegisteredModelAlias.objects.filter(model=model).values_list(
                    "alias", "version__version"
                )
            )
            aliases += len(here_aliases)
            if here_aliases != self.source_aliases.get(name, {}):
                mismatched.append(
                    f"{name}: aliases {here_aliases}, source {self.source_aliases.get(name)}"
                )
        self.report.count("registered_models", "custody", models)
        self.report.count("model_versions", "custody", versions)
        self.report.count("aliases", "custody", aliases)
        return {
            "compared": len(self.source_versions),
            "mismatched": mismatched,
            "mismatched_count": len(mismatched),
        }

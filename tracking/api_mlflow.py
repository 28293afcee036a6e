"""MLflow tracking endpoints: parse the message, call a service or selector, encode the answer."""

from __future__ import annotations

from typing import Any

from core import access
from core.errors import InvalidParameterValue
from core.mlflow_api import MlflowRequest, mlflow_route, run_decided_from_cache, validate_first
from tracking import permissions, selectors, services
from tracking.models import Experiment, Run, RunStatus

RUN_STATUSES = {
    **{s.value: s.value for s in RunStatus},
    "1": RunStatus.RUNNING.value,
    "2": RunStatus.SCHEDULED.value,
    "3": RunStatus.FINISHED.value,
    "4": RunStatus.FAILED.value,
    "5": RunStatus.KILLED.value,
}


def _experiment(experiment_id: Any) -> dict[str, Any]:
    return selectors.experiment_payloads([selectors.experiment_get(experiment_id)])[0]


def _run(run_id: str, run: Run | None = None) -> dict[str, Any]:
    payloads = selectors.run_payloads([run_id], runs=[run] if run is not None else ())
    if not payloads:
        selectors.run_get(run_id)  # raises the MLflow "not found" error
    return payloads[0]


# ---------------------------------------------------------------------------------------------
# Experiments


@mlflow_route("experiments/create", "POST", access=access.EXPERIMENT_CREATE)
def create_experiment(req: MlflowRequest) -> dict:
    experiment = services.experiment_create(
        name=req.str("name"),
        artifact_location=req.str("artifact_location"),
        tags=req.messages("tags"),
        created_by=req.username,
        owner=req.http.user,
    )
    return {"experiment_id": str(experiment.experiment_id)}


@mlflow_route("experiments/get", "GET", access=access.EXPERIMENT_READ)
def get_experiment(req: MlflowRequest) -> dict:
    experiment_id = req.str("experiment_id", required=True)
    experiment = req.resolved  # the experiment the access layer decided on
    if isinstance(experiment, Experiment) and str(experiment.pk) == experiment_id:
        return {"experiment": selectors.experiment_payloads([experiment])[0]}
    return {"experiment": _experiment(experiment_id)}


@mlflow_route("experiments/get-by-name", "GET", access=access.EXPERIMENT_READ)
def get_experiment_by_name(req: MlflowRequest) -> dict:
    name = req.str("experiment_name", required=True)
    experiment = req.resolved  # the experiment the access layer decided on
    if not (isinstance(experiment, Experiment) and experiment.name == name):
        experiment = selectors.experiment_get_by_name(name)
    return {"experiment": selectors.experiment_payloads([experiment])[0]}


@mlflow_route("experiments/search", ["POST", "GET"], access=access.AUTHENTICATED)
def search_experiments(req: MlflowRequest) -> dict:
    experiments, token = selectors.experiments_search(
        user=req.http.user,
        view_type=req.enum("view_type", selectors.VIEW_TYPES, default="active"),
        filter_string=req.str("filter"),
        order_by=req.str_list("order_by"),
        # MLflow's server refuses a missing max_results, but SearchExperiments leaves the
        # default to the server; 1000 is what the client sends when not told otherwise.
        max_results=req.int64("max_results", default=1000),
        page_token=req.str("page_token"),
    )
    result: dict[str, Any] = {"experiments": selectors.experiment_payloads(experiments)}
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("experiments/update", "POST", access=access.EXPERIMENT_EDIT)
def update_experiment(req: MlflowRequest) -> dict:
    services.experiment_rename(
        experiment_id=req.str("experiment_id", required=True), new_name=req.str("new_name")
    )
    return {}


@mlflow_route("experiments/delete", "POST", access=access.EXPERIMENT_MANAGE)
def delete_experiment(req: MlflowRequest) -> dict:
    services.experiment_delete(experiment_id=req.str("experiment_id", required=True))
    return {}


@mlflow_route("experiments/restore", "POST", access=access.EXPERIMENT_MANAGE)
def restore_experiment(req: MlflowRequest) -> dict:
    services.experiment_restore(experiment_id=req.str("experiment_id", required=True))
    return {}


@mlflow_route("experiments/set-experiment-tag", "POST", access=access.EXPERIMENT_EDIT)
def set_experiment_tag(req: MlflowRequest) -> dict:
    services.experiment_set_tag(
        experiment_id=req.str("experiment_id", required=True),
        key=req.data.get("key"),
        value=req.data.get("value"),
    )
    return {}


@mlflow_route("experiments/delete-experiment-tag", "POST", access=access.EXPERIMENT_EDIT)
def delete_experiment_tag(req: MlflowRequest) -> dict:
    services.experiment_delete_tag(
        experiment_id=req.str("experiment_id", required=True), key=req.data.get("key")
    )
    return {}


MAX_DATASET_SEARCH_EXPERIMENTS = 20  # MLflow's MAX_EXPERIMENT_IDS_PER_REQUEST


@mlflow_route(
    "experiments/search-datasets",
    "POST",
    access=access.AUTHENTICATED,
    prefixes=("api/2.0/mlflow/", "ajax-api/2.0/mlflow/"),
)
def search_datasets(req: MlflowRequest) -> dict:
    experiment_ids = req.str_list("experiment_ids")
    if not experiment_ids:
        raise InvalidParameterValue(
            "SearchDatasets request must specify at least one experiment_id."
        )
    if len(experiment_ids) > MAX_DATASET_SEARCH_EXPERIMENTS:
        raise InvalidParameterValue(
            f"SearchDatasets request cannot specify more than {MAX_DATASET_SEARCH_EXPERIMENTS} "
            f"experiment_ids. Received {len(experiment_ids)} experiment_ids."
        )
    summaries = selectors.dataset_summaries(user=req.http.user, experiment_ids=experiment_ids)
    return {"dataset_summaries": summaries} if summaries else {}


# ---------------------------------------------------------------------------------------------
# Runs


@mlflow_route("runs/create", "POST", access=access.EXPERIMENT_EDIT)
def create_run(req: MlflowRequest) -> dict:
    run = services.run_create(
        experiment_id=req.str("experiment_id"),
        user_id=req.username or req.str("user_id", default="", max_length=256) or "",
        run_name=req.str("run_name"),
        start_time=req.int64("start_time"),
        tags=req.messages("tags"),
        experiment=req.resolved if isinstance(req.resolved, Experiment) else None,
    )
    return {"run": selectors.new_run_payload(run, run.tags_at_creation)}  # type: ignore[attr-defined]


def _decide_again(req: MlflowRequest, required: str) -> None:
    """The run was not as its cached decision took it: forget the cached experiment and
    decide from the stored run (which raises the usual 404 or 403)."""
    decided = req.resolved
    assert isinstance(decided, permissions.DecidedRun)
    permissions.forget_run(decided.run_id)
    req.resolved = access.authorize(req.http, required, req)


def _resolved_run(req: MlflowRequest) -> Run | None:
    """The run the access layer decided on, when it is the one the handler reads."""
    run = req.resolved
    return run if isinstance(run, Run) and run.run_id == req.run_id() else None


@mlflow_route("runs/get", "GET", access=access.RUN_READ)
@run_decided_from_cache
def get_run(req: MlflowRequest) -> dict:
    decided = req.resolved
    if isinstance(decided, permissions.DecidedRun):
        # The run row comes with everything else, only if the run is where it was decided.
        found = selectors.run_payloads([decided.run_id], decided_experiment=decided.experiment_id)
        if found:
            return {"run": found[0]}
        _decide_again(req, access.RUN_READ)
    return {"run": _run(req.run_id(), _resolved_run(req))}


@mlflow_route("runs/update", "POST", access=access.RUN_EDIT)
@run_decided_from_cache
def update_run(req: MlflowRequest) -> dict:
    status = req.enum("status", RUN_STATUSES, default=None)
    end_time = req.int64("end_time")
    run_name = req.str("run_name")
    decided = req.resolved
    if isinstance(decided, permissions.DecidedRun):
        if not run_name and (status is not None or end_time is not None):
            updated = services.run_update_decided(
                run_id=decided.run_id,
                experiment_id=decided.experiment_id,
                status=status,
                end_time=end_time,
            )
            if updated is not None:
                return {"run_info": selectors.run_info_from_model(updated)}
        # Not active there, or a rename (which writes the name tag under the run's lock):
        # decided again from the stored run.
        _decide_again(req, access.RUN_EDIT)
    run = services.run_update(
        run_id=req.run_id(),
        status=status,
        end_time=end_time,
        run_name=run_name,
        run=_resolved_run(req),
    )
    return {"run_info": selectors.run_info_from_model(run)}


@mlflow_route("runs/delete", "POST", access=access.RUN_MANAGE)
def delete_run(req: MlflowRequest) -> dict:
    services.run_delete(run_id=req.run_id())
    return {}


@mlflow_route("runs/restore", "POST", access=access.RUN_MANAGE)
def restore_run(req: MlflowRequest) -> dict:
    services.run_restore(run_id=req.run_id())
    return {}


def _log(req: MlflowRequest, **batch: Any) -> None:
    """run_log_batch for the run the access layer decided on: from its cached experiment
    when it could (one statement, which checks that the run is active there), else, or when
    that check fails, from the stored run, decided on again."""
    decided = req.resolved
    if isinstance(decided, permissions.DecidedRun):
        try:
            services.run_log_batch(
                run_id=decided.run_id, decided_experiment=decided.experiment_id, **batch
            )
            return
        except services.RunNotAsDecided:
            _decide_again(req, access.RUN_EDIT)
    services.run_log_batch(run_id=req.run_id(), run=_resolved_run(req), **batch)


@mlflow_route("runs/log-metric", "POST", access=access.RUN_EDIT)
@run_decided_from_cache
def log_metric(req: MlflowRequest) -> dict:
    metric = {
        field: req.data.get(field)
        for field in (
            "key",
            "value",
            "timestamp",
            "step",
            "model_id",
            "dataset_name",
            "dataset_digest",
        )
    }
    _log(req, metrics=[metric])
    return {}


@mlflow_route("runs/log-parameter", "POST", access=access.RUN_EDIT)
@run_decided_from_cache
def log_param(req: MlflowRequest) -> dict:
    _log(req, params=[{"key": req.data.get("key"), "value": req.data.get("value")}])
    return {}


@mlflow_route("runs/set-tag", "POST", access=access.RUN_EDIT)
@run_decided_from_cache
def set_tag(req: MlflowRequest) -> dict:
    _log(req, tags=[{"key": req.data.get("key"), "value": req.data.get("value")}])
    return {}


@mlflow_route("runs/delete-tag", "POST", access=access.RUN_EDIT)
def delete_tag(req: MlflowRequest) -> dict:
    services.run_delete_tag(run_id=req.run_id(), key=req.data.get("key"))
    return {}


@mlflow_route("runs/log-batch", "POST", access=access.RUN_EDIT)
@run_decided_from_cache
def log_batch(req: MlflowRequest) -> dict:
    _log(
        req,
        metrics=req.messages("metrics"),
        params=req.messages("params"),
        tags=req.messages("tags"),
    )
    return {}


@mlflow_route("runs/log-inputs", "POST", access=access.RUN_EDIT)
def log_inputs(req: MlflowRequest) -> dict:
    services.run_log_inputs(
        run_id=req.run_id(), datasets=req.messages("datasets"), models=req.messages("models")
    )
    return {}


@mlflow_route("runs/outputs", "POST", access=access.RUN_EDIT)
def log_outputs(req: MlflowRequest) -> dict:
    services.run_log_outputs(run_id=req.run_id(), models=req.messages("models"))
    return {}


@mlflow_route("runs/log-model", "POST", access=access.RUN_EDIT)
def log_model_legacy(req: MlflowRequest) -> dict:
    services.run_append_log_model_history(run_id=req.run_id(), model_json=req.str("model_json"))
    return {}


@mlflow_route("runs/search", ["POST", "GET"], access=access.AUTHENTICATED)
def search_runs(req: MlflowRequest) -> dict:
    run_ids, token = selectors.runs_search(
        user=req.http.user,
        experiment_ids=req.str_list("experiment_ids"),
        filter_string=req.str("filter"),
        view_type=req.enum("run_view_type", selectors.VIEW_TYPES, default="active"),
        max_results=req.int64("max_results"),
        order_by=req.str_list("order_by"),
        page_token=req.str("page_token"),
    )
    result: dict[str, Any] = {"runs": selectors.run_payloads(run_ids)}
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("metrics/get-history", "GET", access=access.RUN_READ)
def get_metric_history(req: MlflowRequest) -> dict:
    metrics, token = selectors.metric_history(
        run_id=req.run_id(),
        key=req.str("metric_key", required=True),
        max_results=req.int64("max_results"),
        page_token=req.str("page_token"),
    )
    result: dict[str, Any] = {}
    if metrics:
        result["metrics"] = metrics
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("metrics/get-history-bulk", "GET", access=access.RUN_READ)
def get_metric_history_bulk(req: MlflowRequest) -> dict:
    """The UI's history of one metric over several runs (`run_id` repeated, at most 100): runs
    in ascending id order, each run's points by (timestamp, step, value), `max_results` points
    in all (at most 25000, the default)."""
    run_ids = req.str_list("run_id")
    if len(run_ids) > 100:
        raise InvalidParameterValue(
            "GetMetricHistoryBulk request cannot specify more than 100 run_ids. "
            f"Received {len(run_ids)} run_ids."
        )
    return {
        "metrics": selectors.metric_history_bulk(
            run_ids=run_ids,
            key=req.str("metric_key", required=True),
            max_results=min(req.int64("max_results", default=25000), 25000),
        )
    }


MAX_RUNS_BULK_INTERVAL = 100  # MLflow's MAX_RUNS_GET_METRIC_HISTORY_BULK
MAX_RESULTS_PER_RUN = 2500


def _bulk_interval_arguments(req: MlflowRequest) -> dict[str, Any]:
    """MLflow's checks, in MLflow's order, before anything about the runs is looked up: the
    run list, the metric key, then the steps and the sample size."""
    run_ids = req.str_list("run_ids")
    if not run_ids:
        raise InvalidParameterValue("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_RUNS_BULK_INTERVAL:
        raise InvalidParameterValue(
            f"GetMetricHistoryBulkInterval request must specify at most "
            f"{MAX_RUNS_BULK_INTERVAL} run_ids. Received {len(run_ids)} run_ids."
        )
    key = req.str("metric_key", required=True)
    start_step, end_step = req.int64("start_step"), req.int64("end_step")
    max_results = req.int64("max_results", default=MAX_RESULTS_PER_RUN)
    if not 1 <= max_results <= MAX_RESULTS_PER_RUN:
        raise InvalidParameterValue(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
    if (start_step is None) != (end_step is None):
        raise InvalidParameterValue(
            "If either start step or end step are specified, both must be specified."
        )
    if start_step is not None and start_step > end_step:
        raise InvalidParameterValue(
            "end_step must be greater than start_step. "
            f"Found start_step={start_step} and end_step={end_step}."
        )
    return {
        "key": key,
        "start_step": start_step,
        "end_step": end_step,
        "max_results": max_results,
    }


@validate_first(_bulk_interval_arguments)
@mlflow_route(
    "metrics/get-history-bulk-interval",
    "GET",
    access=access.RUN_READ,
    prefixes=("api/2.0/mlflow/", "ajax-api/2.0/mlflow/"),
)
def get_metric_history_bulk_interval(req: MlflowRequest) -> dict:
    # The access layer has found every run (a missing one is a 404) and decided on each.
    return {
        "metrics": selectors.metric_history_bulk_interval(
            run_ids=req.str_list("run_ids"), **_bulk_interval_arguments(req)
        )
    }


# ---------------------------------------------------------------------------------------------
# Logged models (MLflow 3)


def _logged_model(model_id: str, *, allow_deleted: bool = False) -> dict:
    model = selectors.logged_model_get(model_id, allow_deleted=allow_deleted)
    return selectors.logged_model_payloads([model])[0]


@mlflow_route("logged-models", "POST", access=access.EXPERIMENT_EDIT)
def create_logged_model(req: MlflowRequest) -> dict:
    model = services.logged_model_create(
        experiment_id=req.str("experiment_id"),
        name=req.str("name"),
        model_type=req.str("model_type"),
        source_run_id=req.str("source_run_id"),
        params=req.messages("params"),
        tags=req.messages("tags"),
        # The wire field is an int64 user id (MLflow's LoggedModel.creator_id).
        creator_id=str(req.http.user.pk) if req.http.user.is_authenticated else "",
    )
    return {"model": selectors.logged_model_payloads([model])[0]}


@mlflow_route("logged-models/search", "POST", access=access.AUTHENTICATED)
def search_logged_models(req: MlflowRequest) -> dict:
    models, token = selectors.logged_models_search(
        user=req.http.user,
        experiment_ids=req.str_list("experiment_ids"),
        filter_string=req.str("filter"),
        datasets=req.messages("datasets"),
        max_results=req.int64("max_results"),
        order_by=req.messages("order_by"),
        page_token=req.str("page_token"),
    )
    result: dict[str, Any] = {"models": selectors.logged_model_payloads(models)}
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("logged-models/<str:model_id>", "GET", access=access.EXPERIMENT_READ)
def get_logged_model(req: MlflowRequest) -> dict:
    return {
        "model": _logged_model(
            req.kwargs["model_id"], allow_deleted=req.bool("allow_deleted", default=False)
        )
    }


@mlflow_route("logged-models/<str:model_id>", "PATCH", access=access.EXPERIMENT_EDIT)
def finalize_logged_model(req: MlflowRequest) -> dict:
    model = services.logged_model_finalize(
        model_id=req.kwargs["model_id"], status=req.data.get("status")
    )
    return {"model": selectors.logged_model_payloads([model])[0]}


@mlflow_route("logged-models/<str:model_id>", "DELETE", access=access.EXPERIMENT_MANAGE)
def delete_logged_model(req: MlflowRequest) -> dict:
    services.logged_model_delete(model_id=req.kwargs["model_id"])
    return {}


@mlflow_route("logged-models/<str:model_id>/tags", "PATCH", access=access.EXPERIMENT_EDIT)
def set_logged_model_tags(req: MlflowRequest) -> dict:
    services.logged_model_set_tags(model_id=req.kwargs["model_id"], tags=req.messages("tags"))
    return {}


@mlflow_route(
    "logged-models/<str:model_id>/tags/<str:tag_key>", "DELETE", access=access.EXPERIMENT_EDIT
)
def delete_logged_model_tag(req: MlflowRequest) -> dict:
    services.logged_model_delete_tag(model_id=req.kwargs["model_id"], key=req.kwargs["tag_key"])
    return {}


@mlflow_route("logged-models/<str:model_id>/params", "POST", access=access.EXPERIMENT_EDIT)
def log_logged_model_params(req: MlflowRequest) -> dict:
    services.logged_model_log_params(model_id=req.kwargs["model_id"], params=req.messages("params"))
    return {}

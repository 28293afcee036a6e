"""What the unmodified MLflow client sees when it reaches for a feature family Custody does
not serve (core/mlflow_unsupported.py): the documented 501 naming the family, never a bare
404, and the client's own switch to keep from calling it."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.mlflow_client

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


@pytest.fixture
def synchronous_tracing(mlflow_env, monkeypatch, unique_name):
    """Traces exported on the calling thread, so the outcome is logged before the test
    looks; tracing switched back on afterwards whatever the test did."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_experiment(unique_name)
    mlflow.tracing.enable()
    yield
    mlflow.tracing.enable()


def _export_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("mlflow.tracing") and r.levelno >= logging.WARNING
    ]


def test_a_traced_function_reports_the_documented_error(synchronous_tracing, caplog):
    @mlflow.trace
    def predict(x: int) -> int:
        return x + 1

    with caplog.at_level(logging.WARNING, logger="mlflow.tracing"):
        assert predict(1) == 2  # the application keeps working
    warnings = _export_warnings(caplog)
    assert warnings, "the client logged nothing about the trace it could not send"
    assert any(
        "NOT_IMPLEMENTED" in w and "Custody does not serve MLflow tracing" in w for w in warnings
    ), warnings
    assert not any("ENDPOINT_NOT_FOUND" in w or "404" in w for w in warnings), warnings


def test_a_manual_span_reports_the_documented_error(synchronous_tracing, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow.tracing"):
        with mlflow.start_span(name="retrieve") as span:
            span.set_inputs({"q": "x"})
    assert any("Custody does not serve MLflow tracing" in w for w in _export_warnings(caplog))


def test_disabling_tracing_in_the_client_sends_nothing(synchronous_tracing, caplog):
    mlflow.tracing.disable()

    @mlflow.trace
    def predict(x: int) -> int:
        return x * 2

    with caplog.at_level(logging.WARNING, logger="mlflow.tracing"):
        assert predict(2) == 4
    assert _export_warnings(caplog) == []


def test_reading_traces_names_the_family(mlflow_env, unique_name):
    experiment_id = MlflowClient().create_experiment(unique_name)
    with pytest.raises(MlflowException) as excinfo:
        MlflowClient().search_traces(locations=[experiment_id])
    assert excinfo.value.error_code == "NOT_IMPLEMENTED"
    assert "feature family 'tracing'" in excinfo.value.message

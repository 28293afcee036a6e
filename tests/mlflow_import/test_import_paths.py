"""The import services write history as it was (original ids and times, stages and aliases
without a promotion or an approval). Only `import_mlflow` may call them: no view, task or
other service does, so nothing reachable over HTTP can set a stage that way."""

from __future__ import annotations

import re

from tests.conftest import ROOT

IMPORT_SERVICES = (
    "experiment_import",
    "runs_import",
    "logged_models_import",
    "run_model_links_import",
    "registered_model_import",
    "model_version_import",
    "model_aliases_import",
    "user_import",
)
CALL = re.compile(rf"(?<!def )\b({'|'.join(IMPORT_SERVICES)})\(")
SKIP = {".venv", "node_modules", "tests", "bench", ".git"}


def test_only_the_importer_calls_the_import_services():
    callers = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if SKIP & set(relative.parts[:-1]) or relative.parts[0].startswith("."):
            continue
        found = set(CALL.findall(path.read_text(errors="replace")))
        if found:
            callers[str(relative)] = found
    assert set(callers) == {"mlflow_import/importer.py"}, callers
    assert callers["mlflow_import/importer.py"] == set(IMPORT_SERVICES)

"""`manage.py import_mlflow --tracking-uri http://mlflow:5000`: bring a running MLflow
server's history into Custody (docs/import.md)."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from core import context
from mlflow_import.importer import Importer
from mlflow_import.models import ImportSource
from mlflow_import.source import MlflowSource, SourceError, display_uri


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


class Command(BaseCommand):
    help = (
        "Import experiments, runs, metric histories, artifacts, logged models and the model "
        "registry from a running MLflow server through its REST API (credentials from "
        "MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN). Idempotent: a second "
        "import writes only what changed; an interrupted one resumes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tracking-uri", required=True, help="the MLflow server, http(s)://")
        parser.add_argument("--experiments", help="comma-separated experiment names or ids")
        parser.add_argument("--models", help="comma-separated registered model names")
        parser.add_argument(
            "--dry-run", action="store_true", help="read the source and say what would change"
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="repeat the previous import of this server (its --experiments and --models)",
        )
        parser.add_argument(
            "--workers", type=int, default=8, help="parallel requests to the source (default 8)"
        )
        parser.add_argument(
            "--report",
            default="mlflow-import-report.json",
            help="where the JSON verification report is written",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args, **options):
        uri = options["tracking_uri"]
        if not uri.startswith(("http://", "https://")):
            raise CommandError(f"--tracking-uri must be an http(s):// URL, not {uri!r}.")
        if not 1 <= options["workers"] <= 64:
            raise CommandError("--workers must be between 1 and 64.")
        experiments, models = _names(options["experiments"]), _names(options["models"])
        if options["resume"]:
            previous = ImportSource.objects.filter(server=display_uri(uri)).first()
            if previous is None:
                raise CommandError(f"Nothing to resume: {display_uri(uri)} was never imported.")
            experiments = experiments or previous.options.get("experiments")
            models = models or previous.options.get("models")
        # A fixed width when the output is not a terminal, so the table reads in logs.
        out = self.stdout._out if hasattr(self.stdout, "_out") else sys.stdout
        console = Console(file=out, width=None if out.isatty() else 130)
        bars = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=options["no_progress"],
        )

        @contextmanager
        def phase(name: str, total: int | None):
            task = bars.add_task(name, total=total)
            yield lambda n: bars.advance(task, n)
            bars.update(
                task, completed=bars.tasks[task].completed, total=bars.tasks[task].completed
            )

        importer = Importer(
            MlflowSource(uri, pool=options["workers"] * 2),
            experiments=experiments,
            models=models,
            dry_run=options["dry_run"],
            workers=options["workers"],
            progress=phase,
        )
        # Audit events name the import as their actor; each carries the source server.
        token = context.set_context(
            context.RequestContext(
                request_id=context.new_request_id(),
                username="mlflow-import",
                auth_method="management_command",
            )
        )
        try:
            with bars:
                report = importer.run()
        except SourceError as exc:
            raise CommandError(f"The MLflow server refused or failed: {exc}") from None
        finally:
            context.reset_context(token)
        data = report.as_dict()
        Path(options["report"]).write_text(json.dumps(data, indent=2, sort_keys=True))
        console.print(self._table(data))
        for item in data["skipped"][:50]:
            console.print(f"skipped {item['kind']} {item['id']}: {item['reason']}")
        for item in data["notes"][:50]:
            console.print(f"note: {item['kind']} {item['id']}: {item['note']}")
        for name, check in data["checks"].items():
            status = (
                "ok" if not check["mismatched_count"] else f"{check['mismatched_count']} differ"
            )
            console.print(f"check {name}: {check['compared']} compared, {status}")
        console.print(f"report written to {options['report']}")
        if not options["dry_run"] and not report.ok:
            raise CommandError("Verification found differences; see the report.")

    @staticmethod
    def _table(data: dict) -> Table:
        order = ["source", "to_import", "imported", "created_inactive", "existing", "unchanged",
                 "skipped", "custody"]  # fmt: skip
        present = {c for counts in data["counts"].values() for c in counts}
        columns = [c for c in order if c in present]
        table = Table(
            title=f"MLflow import from {data['server']}" + (" (dry run)" if data["dry_run"] else "")
        )
        table.add_column("kind")
        for column in columns:
            table.add_column(column.replace("_", " "), justify="right")
        table.add_column("per second", justify="right")
        phase_of = {"experiments": "experiments", "runs": "runs", "logged_models": "logged_models",
                    "artifacts": "artifacts", "registered_models": "registered_models", "users": "users"}  # fmt: skip
        for kind, counts in data["counts"].items():
            rate = data["throughput"].get(phase_of.get(kind, ""), {}).get("per_second", "")
            table.add_row(kind, *(str(counts.get(c, "")) for c in columns), str(rate))
        return table

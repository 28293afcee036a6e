import sys

from django.core.management.base import BaseCommand, CommandError

from audit.api_v1 import export_response, filters_from
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Export audit events as CSV or JSON Lines (the same files the API streams)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        for name in ("model", "actor", "action", "object-type", "outcome", "since", "until"):
            parser.add_argument(f"--{name}")
        # --version is Django's own option; the model version filter is --model-version.
        parser.add_argument("--model-version", dest="model_version")

    def handle(self, *args, **options):
        params = {
            key: options[key]
            for key in ("model", "actor", "action", "object_type", "outcome", "since", "until")
        }
        params["version"] = options["model_version"]
        try:
            response = export_response(filters_from(params), options["format"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        out = (
            open(options["output"], "w", encoding="utf-8", newline="")
            if options["output"]
            else sys.stdout
        )
        try:
            for chunk in response.streaming_content:
                out.write(chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk)
        finally:
            if options["output"]:
                out.close()

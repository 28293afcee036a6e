import json

from django.core.management.base import BaseCommand, CommandError

from audit.export import parse_csv, parse_jsonl
from audit.selectors import verify_live_chain
from audit.verify import verify_events


class Command(BaseCommand):
    help = (
        "Verify the audit hash chain: the live table (default) or an exported CSV / JSON Lines "
        "file. Reports the first broken event and exits 1 when the chain does not verify."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", help="an export written by export_audit or the API")
        parser.add_argument(
            "--partial",
            action="store_true",
            help="the CSV file is a filtered export (one model, one actor): check each event's "
            "hash and their order, not the links between consecutive events",
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        path = options["file"]
        if path is None:
            result = verify_live_chain()
        else:
            try:
                handle = open(path, encoding="utf-8", newline="")
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc}") from None
            with handle:
                if path.endswith(".csv"):
                    result = verify_events(parse_csv(handle), contiguous=not options["partial"])
                else:
                    header, rows = parse_jsonl(handle)
                    result = verify_events(
                        rows,
                        contiguous=bool(header.get("contiguous")),
                        checkpoints=header.get("checkpoints", []),
                    )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(
                f"OK: {result.checked} events verified (last #{result.last_seq}), "
                f"{result.checkpoints_checked} signed checkpoints."
            )
        else:
            self.stdout.write(
                f"BROKEN at event #{result.first_broken_seq}: {result.reason} "
                f"({result.checked} events read)."
            )
        if not result.ok:
            raise SystemExit(1)

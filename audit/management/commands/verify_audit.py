import csv
import json

from django.core.management.base import BaseCommand, CommandError

from audit.anchors import AnchorError, store_for
from audit.export import verify_file
from audit.selectors import verify_live_chain
from audit.verify import VerifyResult


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
            help="with --legacy, a CSV file without a manifest is a filtered export (one model, "
            "one actor): check each event's hash and their order, not the links between "
            "consecutive events. A file with a manifest says so itself",
        )
        parser.add_argument(
            "--legacy",
            action="store_true",
            help="the file is an export made before manifests: accept it without one, with a "
            "warning (otherwise a missing manifest means the file was cut or stripped)",
        )
        parser.add_argument(
            "--anchors",
            metavar="URL",
            help="the anchor store to check against (file:///path or s3://bucket/prefix; "
            "default: CUSTODY_AUDIT_ANCHOR_URL). The chain or export must reach every "
            "anchored checkpoint signed before it, with the same hash, and no anchor may be "
            "missing from their sequence",
        )
        parser.add_argument(
            "--no-anchors", action="store_true", help="do not check against any anchor store"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        path = options["file"]
        anchors_url = "" if options["no_anchors"] else options["anchors"]
        if anchors_url:
            try:
                store_for(anchors_url)
            except AnchorError as exc:
                raise CommandError(str(exc)) from None
        if path is None:
            result = verify_live_chain(anchors_url)
        else:
            try:
                result = verify_file(
                    path,
                    partial=options["partial"],
                    legacy=options["legacy"],
                    anchors_url=anchors_url,
                )
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc}") from None
            except (ValueError, KeyError, TypeError, AttributeError, csv.Error) as exc:
                result = VerifyResult().fail(None, f"the file is not a readable export ({exc})")
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            manifest = ", signed manifest matches" if result.manifest == "checked" else ""
            self.stdout.write(
                f"OK: {result.checked} events verified (last #{result.last_seq}), "
                f"{result.checkpoints_checked} signed checkpoints{manifest}"
                f"{_anchor_summary(result)}."
            )
        else:
            where = f" at event #{result.first_broken_seq}" if result.first_broken_seq else ""
            self.stdout.write(f"BROKEN{where}: {result.reason} ({result.checked} events read).")
        # With --json the warnings are in the JSON; stdout stays one parsable document.
        warn = self.stderr.write if options["json"] else self.stdout.write
        for warning in result.warnings:
            warn(f"Warning: {warning}.")
        if not result.ok:
            raise SystemExit(1)


def _anchor_summary(result: VerifyResult) -> str:
    if result.anchors is None:
        return ""
    newest = result.anchors.get("newest")
    if not newest:
        return f", no anchors yet in {result.anchors['url']}"
    return (
        f", {result.anchors_checked} anchors checked in {result.anchors['url']} (newest: "
        f"checkpoint #{newest['seq']}, {newest['age_seconds']:.0f} s old)"
    )

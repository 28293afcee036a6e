from django.core.management.base import BaseCommand, CommandError

from audit import anchors, services


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit chain's head now and publish it to the anchor store "
        "(CUSTODY_AUDIT_ANCHOR_URL). Idempotent: an unchanged head is not signed twice, and an "
        "anchor already published is not written again."
    )

    def handle(self, *args, **options):
        checkpoint = services.checkpoint_create()
        if checkpoint is None:
            self.stdout.write("The audit chain is empty: nothing to sign.")
            return
        line = f"Checkpoint #{checkpoint.seq} ({checkpoint.hash[:16]}…, key {checkpoint.key_id})"
        if not checkpoint.anchored:
            self.stdout.write(f"{line}; no anchor store is configured (CUSTODY_AUDIT_ANCHOR_URL).")
            return
        try:
            written = anchors.publish(checkpoint)
        except anchors.AnchorError as exc:
            raise CommandError(
                f"{line} is signed but not yet published ({exc}); the outbox retries it."
            ) from None
        where = anchors.store_for(anchors.configured_url()).describe()
        state = "published to" if written else "already published to"
        self.stdout.write(f"{line} {state} {where}/{anchors.object_name(checkpoint.seq)}.")

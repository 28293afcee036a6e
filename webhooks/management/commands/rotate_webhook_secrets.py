from django.core.management.base import BaseCommand
from django.db import transaction

from webhooks import secrets
from webhooks.models import Webhook


class Command(BaseCommand):
    help = (
        "Re-encrypt every webhook secret with CUSTODY_WEBHOOK_SECRET_KEY (old keys in "
        "CUSTODY_WEBHOOK_SECRET_OLD_KEYS must still be set while this runs)."
    )

    def handle(self, *args, **options):
        done = 0
        with transaction.atomic():
            for webhook in Webhook.objects.select_for_update().exclude(secret_encrypted=""):
                webhook.secret_encrypted = secrets.rotate(webhook.secret_encrypted)
                webhook.save(update_fields=["secret_encrypted"])
                done += 1
        self.stdout.write(f"Re-encrypted {done} webhook secret(s).")

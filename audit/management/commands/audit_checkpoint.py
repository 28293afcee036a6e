"""Signs the head of the audit chain now (what the periodic task `audit.checkpoint` does every
5 minutes): `python manage.py audit_checkpoint`."""

from django.core.management.base import BaseCommand

from audit import services


class Command(BaseCommand):
    help = "Sign a checkpoint at the head of the audit chain (idempotent)."

    def handle(self, *args, **options):
        checkpoint = services.checkpoint_create()
        if checkpoint is None:
            self.stdout.write("The audit chain is empty; nothing to sign.")
        else:
            self.stdout.write(f"Signed checkpoint at event #{checkpoint.seq}.")

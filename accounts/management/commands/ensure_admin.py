import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts import services
from accounts.models import Role


class Command(BaseCommand):
    help = (
        "On first start, create the admin user with a generated password (or "
        "CUSTODY_ADMIN_PASSWORD) and print the credentials once. Does nothing afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="", help="the server URL to print for clients")

    def handle(self, *args, **options):
        if get_user_model().objects.filter(is_superuser=True).exists():
            return
        username = settings.CUSTODY_ADMIN_USERNAME
        password = os.environ.get("CUSTODY_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
        services.user_create(username=username, role=Role.ADMIN, password=password)
        url = options["url"] or f"http://127.0.0.1:{settings.PORT}"
        shown = (
            password if not os.environ.get("CUSTODY_ADMIN_PASSWORD") else "(CUSTODY_ADMIN_PASSWORD)"
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Custody created its first administrator. This password is shown only once:",
                    f"  username: {username}",
                    f"  password: {shown}",
                    "",
                    "For the MLflow client:",
                    f"  export MLFLOW_TRACKING_URI={url}",
                    f"  export MLFLOW_TRACKING_USERNAME={username}",
                    f"  export MLFLOW_TRACKING_PASSWORD={shown}",
                    "",
                ]
            )
        )

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import Role
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a user non-interactively, with a role and optionally an API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        parser.add_argument("--email", default="")
        parser.add_argument("--token", action="store_true", help="create and print an API token")
        parser.add_argument("--token-name", default="cli")
        parser.add_argument("--token-days", type=int, default=None)

    def handle(self, *args, **options):
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin was given but standard input was empty.")
        try:
            user = services.user_create(
                username=options["username"],
                role=options["role"],
                password=password,
                email=options["email"],
            )
            if options["token"]:
                _, raw = services.token_create(
                    user=user, name=options["token_name"], expires_in_days=options["token_days"]
                )
                self.stdout.write(raw)
            else:
                self.stdout.write(f"Created user {user.get_username()} ({options['role']}).")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

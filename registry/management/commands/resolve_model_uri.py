import json

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry import selectors
from registry.api_v1 import _resolution


class Command(BaseCommand):
    help = "Resolve models:/name/<stage|latest|N> or models:/name@alias to one model version."

    def add_arguments(self, parser):
        parser.add_argument("uri")

    def handle(self, *args, **options):
        try:
            mv = selectors.resolve_model_uri(options["uri"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(_resolution(mv), indent=2))

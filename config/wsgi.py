import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

application = get_wsgi_application()

# The embedded default has no beat: the web processes relay the outbox and run the periodic
# schedule themselves (outbox/inprocess.py).
from django.conf import settings  # noqa: E402

from outbox import inprocess  # noqa: E402

inprocess.start(settings.CUSTODY_INPROCESS_RELAY_SECONDS, settings.CUSTODY_INPROCESS_PERIODIC)

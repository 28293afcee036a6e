"""Django's PostgreSQL backend, with the per-request connection health check skipped while a
connection is known to be alive.

`CONN_HEALTH_CHECKS` makes Django send `SELECT 1` before the first query of every request on
a persistent connection: a round trip on every hot request, most of which arrive
milliseconds after the same connection answered the previous one. Here the check runs only
when more than `FRESH_SECONDS` have passed since the connection's last request ended (and
Django's end-of-request check kept it). Within that second a connection the server dropped
(a PostgreSQL restart, a pooler's idle cut) fails the request's first query, the request
answers 503 (`core.errors`), and Django closes the connection at the end of that request,
as it does without health checks; after it, the check runs as before.
"""

from __future__ import annotations

import time

from django.core.signals import request_finished
from django.db import connections
from django.db.backends.postgresql import base

FRESH_SECONDS = 1.0
_NEVER = float("-inf")
# psycopg prepares a statement run this many times on a server-binding cursor. Django turns
# preparing off (None); here statements are prepared only where asked for
# (core.prepared.server_prepared_cursor), never by count: Django's own cursors bind on the
# client and never prepare, and no other cursor should start to.
ONLY_WHEN_ASKED = 2**31 - 1


class DatabaseWrapper(base.DatabaseWrapper):
    answered_at: float = _NEVER
    health_check_done: bool

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        if params.get("prepare_threshold") is None:
            params["prepare_threshold"] = ONLY_WHEN_ASKED
        return params

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and not self.health_check_done
            and time.monotonic() - self.answered_at < FRESH_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def connect(self) -> None:
        super().connect()
        self.answered_at = _NEVER


def _stamp_connections(**kwargs) -> None:
    # Runs after Django's own end-of-request receiver (connected when django.db was imported),
    # which closes a connection that had errors and is no longer usable.
    for connection in connections.all(initialized_only=True):
        if isinstance(connection, DatabaseWrapper):
            alive = connection.connection is not None and not connection.errors_occurred
            connection.answered_at = time.monotonic() if alive else _NEVER


request_finished.connect(_stamp_connections, dispatch_uid="custody-stamp-connections")

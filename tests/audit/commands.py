"""Running the audit management commands as an operator would, for the tests."""

from __future__ import annotations

import io

from django.core.management import call_command


def run_command(*args) -> tuple[int, str]:
    """(exit code, what the command printed) of `manage.py <args>`."""
    out = io.StringIO()
    try:
        call_command(*args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()

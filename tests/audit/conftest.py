import pytest


@pytest.fixture(autouse=True)
def _production_chaining(settings):
    """The audit tests run the production default: on PostgreSQL, events are chained after
    their transaction commits (config/settings/test.py chains inline for the other tests)."""
    settings.CUSTODY_AUDIT_CHAINING = "auto"

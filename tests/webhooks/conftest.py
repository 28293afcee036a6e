from __future__ import annotations

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def allow_loopback(settings):
    settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]

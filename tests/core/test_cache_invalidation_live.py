"""Identity and grants are cached per process; a revoke or a permission change still reaches
every gunicorn worker within a second (core.process_cache). Runs against the live server
(two workers), with fresh connections so that requests land on both workers."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

M = "/api/2.0/mlflow"
V1 = "/api/v1"
# The promise: within 1 s of the change's commit, every worker refuses.
WITHIN = 1.0


def _fresh_get(url: str, **kwargs) -> requests.Response:
    # A new session per request: a new connection, which either worker may accept.
    with requests.Session() as session:
        return session.get(url, timeout=30, **kwargs)


def _statuses_after(change_done: float, url: str, rounds: int = 30, **kwargs) -> list[int]:
    """Statuses of `rounds` requests sent once WITHIN seconds have passed since the change."""
    time.sleep(max(0.0, change_done + WITHIN - time.monotonic()))
    return [_fresh_get(url, **kwargs).status_code for _ in range(rounds)]


@pytest.fixture
def live(live_server_process):
    return live_server_process


def _user(live, role: str = "data-scientist") -> tuple[str, str]:
    name = "u" + uuid.uuid4().hex[:10]
    return name, live.create_user(name, role)


def _token(live, auth: tuple[str, str]) -> tuple[int, str]:
    response = requests.post(f"{live.url}{V1}/tokens", json={"name": "t"}, auth=auth, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def _warm(url: str, expected: int, rounds: int = 20, **kwargs) -> None:
    """Fill both workers' caches (and check the state before the change)."""
    statuses = [_fresh_get(url, **kwargs).status_code for _ in range(rounds)]
    assert statuses == [expected] * rounds, statuses


def test_revoked_token_is_refused_by_every_worker_within_a_second(live):
    auth = _user(live)
    token_id, raw = _token(live, auth)
    url = f"{live.url}{M}/experiments/get?experiment_id=0"
    bearer = {"Authorization": f"Bearer {raw}"}
    _warm(url, 200, headers=bearer)

    response = requests.delete(f"{live.url}{V1}/tokens/{token_id}", auth=auth, timeout=30)
    assert response.status_code == 204, response.text
    done = time.monotonic()

    assert _statuses_after(done, url, headers=bearer) == [401] * 30


def test_deactivated_user_is_refused_by_every_worker_within_a_second(live):
    name, password = _user(live)
    _, raw = _token(live, (name, password))
    url = f"{live.url}{M}/experiments/get?experiment_id=0"
    bearer = {"Authorization": f"Bearer {raw}"}
    _warm(url, 200, headers=bearer)
    _warm(url, 200, rounds=8, auth=(name, password))

    live.manage("shell", "-c", _deactivate(name))  # another process, as an operator would
    done = time.monotonic()

    assert _statuses_after(done, url, headers=bearer) == [401] * 30
    # Basic sign-ins too (fewer: ten failures lock the user out with a 429).
    assert _statuses_after(done, url, rounds=8, auth=(name, password)) == [401] * 8


def _deactivate(username: str) -> str:
    return (
        "from django.contrib.auth import get_user_model\n"
        "from accounts import services\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        "services.user_set_active(user=user, is_active=False)\n"
    )


def test_removed_grant_is_refused_by_every_worker_within_a_second(live):
    admin = (live.username, live.password)
    name, password = _user(live)
    response = requests.post(
        f"{live.url}{M}/experiments/create",
        json={"name": "grant-" + uuid.uuid4().hex[:8]},
        auth=admin,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    experiment_id = response.json()["experiment_id"]
    grants_url = f"{live.url}{V1}/experiments/{experiment_id}/permissions"
    response = requests.put(
        grants_url, json={"grants": [{"user": name, "level": "READ"}]}, auth=admin, timeout=30
    )
    assert response.status_code == 200, response.text
    url = f"{live.url}{M}/experiments/get?experiment_id={experiment_id}"
    _warm(url, 200, auth=(name, password))

    response = requests.put(
        grants_url, json={"grants": [{"user": name, "level": "NONE"}]}, auth=admin, timeout=30
    )
    assert response.status_code == 200, response.text
    done = time.monotonic()

    assert _statuses_after(done, url, auth=(name, password)) == [404] * 30


def test_role_change_is_seen_by_every_worker_within_a_second(live):
    """A new role takes effect everywhere within a second too (here: compliance officers
    change nothing)."""
    name, password = _user(live)
    url = f"{live.url}{M}/experiments/create"

    def create() -> int:
        with requests.Session() as session:
            return session.post(
                url, json={"name": "r-" + uuid.uuid4().hex[:8]}, auth=(name, password), timeout=30
            ).status_code

    assert [create() for _ in range(10)] == [200] * 10
    live.manage("shell", "-c", _set_role(name, "compliance"))
    done = time.monotonic()
    time.sleep(max(0.0, done + WITHIN - time.monotonic()))
    assert [create() for _ in range(20)] == [403] * 20


def _set_role(username: str, role: str) -> str:
    return (
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.models import Group\n"
        "from accounts import services\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        f"services.user_set_roles(user=user, groups=[Group.objects.get(name={role!r})])\n"
    )

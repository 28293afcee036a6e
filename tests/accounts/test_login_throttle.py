"""The failed-sign-in throttle through HTTP: admin login, web login and API basic auth share
one counter per username and address, lockout answers 429 with Retry-After, the counters are
shared between processes, and a Redis or cache outage never breaks a correct sign-in."""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.db.models import F
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import LoginFailureCounter
from accounts.throttle import throttle_key
from core.models import CacheVersion

pytestmark = pytest.mark.django_db

SEARCH = "/api/2.0/mlflow/experiments/search"
LIMIT = 10
REDIS_URL = "redis://127.0.0.1:6379/0"
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def staff():
    return services.user_create(username="root-ops", role="admin", password="root-ops-pw-1")


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def api_search(username: str, password: str):
    return Client().get(SEARCH, {"max_results": "10"}, **basic(username, password))


def web_login(username: str, password: str, client: Client | None = None):
    return (client or Client()).post("/login/", {"username": username, "password": password})


def admin_login(username: str, password: str, client: Client | None = None):
    return (client or Client()).post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked(response) -> int:
    assert response.status_code == 429, response.content[:300]
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 300
    return retry_after


def test_admin_login_locks_after_ten_failures_and_refuses_the_right_password(staff):
    assert signed_in(client := Client()) is False
    assert admin_login("root-ops", "root-ops-pw-1", client).status_code == 302
    assert signed_in(client)
    for _ in range(LIMIT):
        refused = admin_login("root-ops", "wrong")
        assert refused.status_code == 200
        assert b"Please enter the correct username and password" in refused.content
    locked_client = Client()
    response = admin_login("root-ops", "root-ops-pw-1", locked_client)
    assert_locked(response)
    assert response["Content-Type"].startswith("text/html")
    assert b"Too many failed sign-in attempts" in response.content
    assert not signed_in(locked_client)
    # Still locked: every further attempt, right or wrong, is the same 429.
    assert_locked(admin_login("root-ops", "wrong"))
    assert_locked(admin_login("root-ops", "root-ops-pw-1"))


def test_admin_login_keeps_the_staff_check_and_does_not_count_it_as_a_guess(scientist):
    for _ in range(LIMIT + 2):
        response = admin_login("alice", "alice-pw-1")
        assert response.status_code == 200
        assert b"Please enter the correct username and password for a staff account" in (
            response.content
        )
    assert not LoginFailureCounter.objects.exists()
    assert web_login("alice", "alice-pw-1").status_code == 302


def test_web_login_locks_after_ten_failures(scientist):
    for _ in range(LIMIT):
        assert web_login("alice", "wrong").status_code == 200
    client = Client()
    response = web_login("alice", "alice-pw-1", client)
    assert_locked(response)
    assert b"Too many failed sign-in attempts" in response.content
    assert b"<form" in response.content
    assert not signed_in(client)


def test_api_basic_auth_locks_after_ten_failures(scientist):
    assert api_search("alice", "alice-pw-1").status_code == 200
    for _ in range(LIMIT):
        assert api_search("alice", "wrong").status_code == 401
    response = api_search("alice", "alice-pw-1")
    assert_locked(response)
    body = response.json()
    assert body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert f"try again in {response['Retry-After']} seconds" in body["message"]


def test_one_counter_across_api_web_and_admin(staff):
    for attempt in range(LIMIT):
        surface = (api_search, web_login, admin_login)[attempt % 3]
        assert surface("root-ops", "wrong").status_code in (200, 401)
    assert_locked(api_search("root-ops", "root-ops-pw-1"))
    assert_locked(web_login("root-ops", "root-ops-pw-1"))
    assert_locked(admin_login("root-ops", "root-ops-pw-1"))


def test_the_lock_is_per_address_and_ends_with_its_window(scientist, monkeypatch):
    for _ in range(LIMIT):
        api_search("alice", "wrong")
    assert_locked(api_search("alice", "alice-pw-1"))
    other_address = Client(REMOTE_ADDR="10.1.2.3")
    assert (
        other_address.get(SEARCH, {"max_results": "10"}, **basic("alice", "alice-pw-1")).status_code
        == 200
    )
    # The window ends by the clock (the counter itself may be cached by the process).
    later = LoginFailureCounter.objects.get().window_started_at + timedelta(seconds=301)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert api_search("alice", "alice-pw-1").status_code == 200
    # The next failure opens a fresh window rather than adding to the old count.
    assert api_search("alice", "wrong").status_code == 401
    assert LoginFailureCounter.objects.get().failures == 1


def test_counters_live_in_redis_when_redis_url_is_set(settings):
    import redis

    username = f"redis-{uuid.uuid4().hex[:8]}"
    services.user_create(username=username, role="data-scientist", password="redis-pw-1")
    settings.REDIS_URL = REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(LIMIT):
            assert api_search(username, "wrong").status_code == 401
        assert not LoginFailureCounter.objects.exists()
        assert_locked(api_search(username, "redis-pw-1"))
        assert_locked(web_login(username, "redis-pw-1"))
    finally:
        # Only this test's key: other test runs may share this Redis.
        client.delete(f"custody:failed-login:{throttle_key(username, '127.0.0.1')}")


def test_a_redis_outage_falls_back_to_the_database_counter(settings, scientist, caplog):
    settings.REDIS_URL = UNREACHABLE_REDIS_URL
    with caplog.at_level(logging.WARNING, logger="accounts.throttle"):
        assert api_search("alice", "alice-pw-1").status_code == 200
        client = Client()
        assert web_login("alice", "alice-pw-1", client).status_code == 302
        assert signed_in(client)
        for _ in range(LIMIT):
            assert api_search("alice", "wrong").status_code == 401
    assert LoginFailureCounter.objects.get().failures == LIMIT
    assert_locked(api_search("alice", "alice-pw-1"))
    assert_locked(admin_login("alice", "alice-pw-1"))
    assert "counting in the database instead" in caplog.text


def _locked_elsewhere(username: str, redis_client=None) -> None:
    """What ten failures counted by another process leave behind: the stored counter and a
    new `throttle` cache version, without this process's bookkeeping of its own writes."""
    key = throttle_key(username, "127.0.0.1")
    if redis_client is None:
        LoginFailureCounter.objects.create(
            key=key, failures=LIMIT, window_started_at=timezone.now()
        )
    else:
        redis_client.set(f"custody:failed-login:{key}", LIMIT, ex=300)
    assert CacheVersion.objects.filter(name="throttle").update(version=F("version") + 1) == 1


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_lock_counted_elsewhere_refuses_the_next_guess_at_once(scientist, settings, store):
    import redis

    client = redis.Redis.from_url(REDIS_URL) if store == "redis" else None
    settings.REDIS_URL = REDIS_URL if store == "redis" else ""
    settings.CUSTODY_CACHE_POLL_SECONDS = 60  # this process will not look again by itself
    try:
        for _ in range(2):  # verified, then remembered with the count it read
            assert api_search("alice", "alice-pw-1").status_code == 200
        _locked_elsewhere("alice", client)
        # A guess reads the stored count: refused before its password is checked...
        assert_locked(api_search("alice", "wrong"))
        # ...and brought the process up to date for the password it remembers.
        assert_locked(api_search("alice", "alice-pw-1"))
        assert not LoginFailureCounter.objects.filter(failures__gt=LIMIT).exists()
    finally:
        if client is not None:
            client.delete(f"custody:failed-login:{throttle_key('alice', '127.0.0.1')}")


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_lock_counted_elsewhere_refuses_a_remembered_password_after_the_poll_interval(
    scientist, settings, store
):
    import redis

    client = redis.Redis.from_url(REDIS_URL) if store == "redis" else None
    settings.REDIS_URL = REDIS_URL if store == "redis" else ""
    try:
        for _ in range(2):  # verified, then remembered with the count it read
            assert api_search("alice", "alice-pw-1").status_code == 200
        _locked_elsewhere("alice", client)
        settings.CUSTODY_CACHE_POLL_SECONDS = 0  # the poll interval has passed
        assert_locked(api_search("alice", "alice-pw-1"))
        assert_locked(web_login("alice", "alice-pw-1"))
    finally:
        if client is not None:
            client.delete(f"custody:failed-login:{throttle_key('alice', '127.0.0.1')}")


def test_a_remembered_password_is_locked_at_once_by_failures_counted_here(scientist, settings):
    import redis

    settings.CUSTODY_CACHE_POLL_SECONDS = 60
    settings.REDIS_URL = REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert api_search("alice", "alice-pw-1").status_code == 200
        for _ in range(LIMIT):
            assert api_search("alice", "wrong").status_code == 401
        assert_locked(api_search("alice", "alice-pw-1"))
    finally:
        client.delete(f"custody:failed-login:{throttle_key('alice', '127.0.0.1')}")


def test_sign_in_does_not_depend_on_the_cache(scientist, staff, monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("cache backend down")

    for name in ("get", "set", "add", "incr", "delete", "get_many", "set_many"):
        monkeypatch.setattr(cache, name, broken)
    assert api_search("alice", "alice-pw-1").status_code == 200
    client = Client()
    assert web_login("alice", "alice-pw-1", client).status_code == 302
    assert signed_in(client)
    assert admin_login("root-ops", "root-ops-pw-1").status_code == 302
    assert api_search("alice", "wrong").status_code == 401


def _admin_login_over_http(base_url: str, username: str, password: str) -> requests.Response:
    with requests.Session() as browser:
        page = browser.get(f"{base_url}/admin/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return browser.post(
            f"{base_url}/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base_url}/admin/login/"},
            allow_redirects=False,
            timeout=30,
        )


@pytest.mark.django_db(transaction=False)
def test_two_gunicorn_workers_share_one_count(live_server_process):
    """Each request on a fresh connection, so the two workers share the attempts between
    them (and the failures arrive concurrently); with per-process counters neither would reach the limit and the right password
    would pass (or 401 and 429 would alternate)."""
    server = live_server_process
    username = f"cross-{uuid.uuid4().hex[:8]}"
    password = server.create_user(username, "admin")
    url = f"{server.url}{SEARCH}?max_results=10"
    # At once, from as many threads: no failure may be lost between processes either.
    with ThreadPoolExecutor(max_workers=LIMIT) as pool:
        wrong = list(
            pool.map(
                lambda _: requests.get(url, auth=(username, "wrong"), timeout=30), range(LIMIT)
            )
        )
    assert [r.status_code for r in wrong] == [401] * LIMIT
    answers = [requests.get(url, auth=(username, password), timeout=30) for _ in range(12)]
    assert [r.status_code for r in answers] == [429] * 12
    assert all(0 < int(r.headers["Retry-After"]) <= 300 for r in answers)
    assert {r.json()["error_code"] for r in answers} == {"REQUEST_LIMIT_EXCEEDED"}
    for _ in range(3):
        response = _admin_login_over_http(server.url, username, password)
        assert response.status_code == 429
        assert 0 < int(response.headers["Retry-After"]) <= 300


@pytest.mark.django_db(transaction=False)
def test_a_password_both_workers_remember_is_locked_on_both_within_a_second(
    live_server_process,
):
    """A worker that has verified a password checks its counter at the cache poll interval
    (0.5 s) rather than on every request: once the limit is reached on one worker, the other
    refuses that password within the interval, and at once after any guess reaches it."""
    server = live_server_process
    username = f"kept-{uuid.uuid4().hex[:8]}"
    password = server.create_user(username, "admin")
    url = f"{server.url}{SEARCH}?max_results=10"
    # Fresh connections: both workers verify the password and remember it.
    for _ in range(24):
        assert requests.get(url, auth=(username, password), timeout=30).status_code == 200
    for _ in range(LIMIT):
        assert requests.get(url, auth=(username, "wrong"), timeout=30).status_code == 401
    locked_at = time.monotonic()
    answers = []
    while time.monotonic() - locked_at < 1.0:
        answers.append(requests.get(url, auth=(username, password), timeout=30).status_code)
    assert set(answers) <= {200, 429}, answers
    answers = [requests.get(url, auth=(username, password), timeout=30) for _ in range(12)]
    assert [r.status_code for r in answers] == [429] * 12
    assert {r.json()["error_code"] for r in answers} == {"REQUEST_LIMIT_EXCEEDED"}

"""Authentication of API clients: basic, bearer, tokens, throttling, sessions with CSRF."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/2.0/mlflow/experiments/get"
PARAMS = {"experiment_id": "0"}


@pytest.fixture(autouse=True)
def clear_throttle():
    cache.clear()
    yield
    cache.clear()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def get(authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    return Client(**headers).get(URL, PARAMS)


def test_anonymous_requests_are_refused_with_a_challenge(scientist):
    response = get()
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert "MLFLOW_TRACKING_USERNAME" in response.json()["message"]
    post = Client().post(
        "/api/2.0/mlflow/experiments/create", {"name": "x"}, content_type="application/json"
    )
    assert post.status_code == 401


def test_basic_password_and_token(scientist, scientist_token):
    assert get(basic("alice", "alice-pw-1")).status_code == 200
    assert get(basic("alice", "alice-pw-1")).status_code == 200  # the remembered path
    assert get(basic("alice", scientist_token)).status_code == 200
    assert get(f"Bearer {scientist_token}").status_code == 200
    for header in [
        basic("alice", "wrong"),
        basic("nobody", "alice-pw-1"),
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer cust_forged",
        "Bearer ",
        "Digest abc",
    ]:
        response = get(header)
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"].startswith("Basic")


def test_every_refused_password_is_hashed(scientist, monkeypatch):
    """An unknown or inactive user is refused after the password is hashed, as a wrong
    password is: the answer's timing does not tell which usernames exist."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import MD5PasswordHasher  # the test settings' hasher

    hashed = []
    for name in ("encode", "verify"):
        original = getattr(MD5PasswordHasher, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            hashed.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MD5PasswordHasher, name, counted)
    services.user_create(username="retired", role="data-scientist", password="retired-pw-1")
    get_user_model().objects.filter(username="retired").update(is_active=False)
    for username, password in (("nobody", "x"), ("retired", "retired-pw-1"), ("alice", "no")):
        hashed.clear()
        assert get(basic(username, password)).status_code == 401
        assert hashed, username


def test_token_of_another_user_is_refused_as_basic_password(scientist, scientist_token):
    services.user_create(username="bob", role="data-scientist", password="bob-pw-1")
    assert get(basic("bob", scientist_token)).status_code == 401


def test_revoked_and_expired_tokens_stop_at_once(scientist, scientist_token, monkeypatch):
    assert get(f"Bearer {scientist_token}").status_code == 200
    services.token_revoke(token=ApiToken.objects.get(user=scientist))
    assert get(f"Bearer {scientist_token}").status_code == 401
    token, raw = services.token_create(user=scientist, name="short", expires_in_days=1)
    assert get(f"Bearer {raw}").status_code == 200
    # The token (cached by the process since its first use) expires when its time comes.
    later = token.expires_at + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert get(f"Bearer {raw}").status_code == 401


def test_disabled_user_and_changed_password_stop_at_once(scientist, scientist_token):
    assert get(basic("alice", "alice-pw-1")).status_code == 200
    scientist.set_password("new-password-2")
    scientist.save(update_fields=["password"])
    assert get(basic("alice", "alice-pw-1")).status_code == 401
    assert get(basic("alice", "new-password-2")).status_code == 200
    services.user_set_active(user=scientist, is_active=False)
    assert get(basic("alice", "new-password-2")).status_code == 401
    assert get(f"Bearer {scientist_token}").status_code == 401


def test_failed_logins_are_throttled(scientist):
    for _ in range(10):
        assert get(basic("alice", "wrong")).status_code == 401
    response = get(basic("alice", "alice-pw-1"))
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.json()["message"]


def test_tokens_are_stored_hashed(scientist):
    token, raw = services.token_create(user=scientist, name="ci")
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.token_hash, stored.display_prefix)
    assert raw.startswith(stored.display_prefix)


def test_authenticated_user_is_the_run_user_and_the_audit_actor(api):
    exp_id = api.experiment()
    run = api.run(exp_id, user_id="mallory")
    assert run["info"]["user_id"] == "alice"
    event = AuditEvent.objects.filter(action="run.create").latest("seq")
    assert (event.actor_username, event.auth_method) == ("alice", "token")
    assert event.token_id is not None


def test_session_writes_need_csrf(scientist):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(scientist)
    assert browser.get(URL, PARAMS).status_code == 200
    refused = browser.post(
        "/api/2.0/mlflow/experiments/create", {"name": "csrf"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]


def test_on_the_api_a_header_is_the_only_credential_even_beside_a_session(
    scientist, scientist_token
):
    """A request that sends an Authorization header is that header's user or refused: the
    session cookie beside it is not read (nor saved: no cookie, no `Vary: Cookie`)."""
    admin = services.user_create(username="root", role="admin", password="root-pw-12345")
    browser = Client()
    browser.force_login(admin)
    assert browser.get("/api/v1/me").json()["username"] == "root"
    as_token = browser.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {scientist_token}")
    assert as_token.json()["username"] == "alice"
    assert "Set-Cookie" not in as_token.headers and "Cookie" not in as_token.get("Vary", "")
    assert as_token["X-Frame-Options"] == "DENY"
    refused = browser.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer cust_not-a-token")
    assert refused.status_code == 401
    # The header's writes need no CSRF token; the session's still do.
    csrf_browser = Client(enforce_csrf_checks=True)
    csrf_browser.force_login(admin)
    created = csrf_browser.post(
        "/api/2.0/mlflow/experiments/create",
        {"name": "by-header"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {scientist_token}",
    )
    assert created.status_code == 200
    without = csrf_browser.post(
        "/api/2.0/mlflow/experiments/create", {"name": "by-session"}, "application/json"
    )
    assert without.status_code == 403 and "CSRF" in without.json()["message"]


def test_create_user_command(capsys, monkeypatch):
    out = io.StringIO()
    call_command("create_user", "carol", "--role", "reviewer", "--token", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("cust_")
    assert get(f"Bearer {raw}").status_code == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass-9\n"))
    call_command(
        "create_user", "dave", "--role", "data-scientist", "--password-stdin", stdout=io.StringIO()
    )
    assert get(basic("dave", "s3cret-pass-9")).status_code == 200
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "carol", "--role", "reviewer", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("create_user", "erin", "--role", "overlord", stdout=io.StringIO())


def test_ensure_admin_creates_once_and_prints_once(monkeypatch):
    monkeypatch.delenv("CUSTODY_ADMIN_PASSWORD", raising=False)
    first = io.StringIO()
    call_command("ensure_admin", stdout=first)
    text = first.getvalue()
    password = next(
        line.split(":", 1)[1].strip() for line in text.splitlines() if "password:" in line
    )
    assert "MLFLOW_TRACKING_PASSWORD=" in text
    assert get(basic("admin", password)).status_code == 200
    second = io.StringIO()
    call_command("ensure_admin", stdout=second)
    assert second.getvalue() == ""

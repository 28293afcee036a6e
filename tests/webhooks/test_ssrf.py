"""SSRF through HTTP: webhook URLs naming loopback, private, link-local (metadata), unspecified
and multicast addresses, IPv4-mapped forms, names resolving to them, a name that rebinds
between creation and delivery, and redirects to them are refused by default; only hosts in
CUSTODY_WEBHOOK_ALLOWED_HOSTS are reached (and may use plain HTTP)."""

from __future__ import annotations

import socket

import pytest

from tests.personas import Persona
from tests.webhooks.receiver import ConnectionCounter
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"


@pytest.fixture
def boss():
    return Persona("boss", "admin")


def _create(boss: Persona, url: str):
    return boss.post("webhooks", {"name": "x", "url": url, "events": ["model_version.created"]})


def _fake_dns(monkeypatch, answers: dict[str, list[str]]):
    """getaddrinfo for invented names (each call pops the next answer when several remain)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "host, reason",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("localhost", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private or reserved"),
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("[fd00:ec2::254]", "private"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::ffff:a9fe:a9fe]", "link-local"),
    ],
)
def test_internal_addresses_are_refused(boss, host, reason):
    response = _create(boss, f"https://{host}/hook")
    assert response.status_code == 400, response.content
    assert reason in response.json()["error"]["message"]
    # The same through MLflow's route.
    event = {"entity": "MODEL_VERSION", "action": "CREATED"}
    mlflow = boss.mlflow("webhooks", {"name": "x", "url": f"https://{host}/", "events": [event]})
    assert mlflow.status_code == 400 and reason in mlflow.json()["message"]


def test_names_resolving_to_internal_addresses_are_refused(boss, monkeypatch):
    _fake_dns(
        monkeypatch,
        {"metadata.test": ["169.254.169.254"], "intranet.test": ["10.0.0.7"], "v6.test": ["::1"]},
    )
    for host, reason in (
        ("metadata.test", "link-local"),
        ("intranet.test", "private"),
        ("v6.test", "loopback"),
    ):
        response = _create(boss, f"https://{host}/hook")
        assert response.status_code == 400
        assert f"'{host}' resolves to" in response.json()["error"]["message"]
        assert reason in response.json()["error"]["message"]


def test_a_name_that_rebinds_to_loopback_after_creation_is_never_connected(
    boss, monkeypatch, django_capture_on_commit_callbacks
):
    """Public when created; loopback when delivering: the address is checked at delivery
    time, and the connection goes to the checked address, so nothing reaches loopback."""
    listener = ConnectionCounter()
    try:
        _fake_dns(monkeypatch, {"rebind.test": [PUBLIC, "127.0.0.1"]})
        url = f"https://rebind.test:{listener.port}/hook"
        assert _create(boss, url).status_code == 201
        assert boss.mlflow("registered-models/create", {"name": "m"}).status_code == 200
        experiment = boss.mlflow("experiments/create", {"name": "e"}).json()["experiment_id"]
        run = boss.mlflow("runs/create", {"experiment_id": experiment}).json()["run"]["info"]
        with django_capture_on_commit_callbacks(execute=True):
            created = boss.mlflow(
                "model-versions/create", {"name": "m", "source": f"runs:/{run['run_id']}/model"}
            )
        assert created.status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == "failed"  # refused: not retried
        assert "resolves to 127.0.0.1, a loopback address" in delivery.last_error
        assert listener.count == 0
    finally:
        listener.close()


def test_plain_http_and_credentials_are_refused(boss, settings):
    response = _create(boss, "http://hooks.example.com/x")
    assert (
        response.status_code == 400 and "must use https://" in response.json()["error"]["message"]
    )
    response = _create(boss, "https://user:pw@hooks.example.com/x")
    assert response.status_code == 400 and "credentials" in response.json()["error"]["message"]
    response = _create(boss, f"https://{'a' * 70}.example.com/x")
    assert (
        response.status_code == 400 and "invalid host name" in response.json()["error"]["message"]
    )
    response = _create(boss, "https://[::1/x")
    assert response.status_code == 400
    response = _create(boss, "file:///etc/passwd")
    assert response.status_code == 400 and "scheme" in response.json()["error"]["message"]


def test_redirects_are_not_followed(boss, receiver, settings, django_capture_on_commit_callbacks):
    settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    listener = ConnectionCounter()  # where the redirect points (a listed host, even)
    try:
        hook = receiver(redirect_to=f"http://127.0.0.1:{listener.port}/latest/meta-data/")
        created = _create(boss, hook.url)
        assert created.status_code == 201
        test = boss.post(f"webhooks/{created.json()['webhook_id']}/test")
        assert test.status_code == 200
        assert test.json()["success"] is False and test.json()["response_status"] == 302
        assert "redirects are not followed" in test.json()["error_message"]
        metadata = receiver(redirect_to="http://169.254.169.254/latest/meta-data/")
        assert (
            boss.client.patch(
                f"/api/v1/webhooks/{created.json()['webhook_id']}",
                {"url": metadata.url},
                content_type="application/json",
            ).status_code
            == 200
        )
        test = boss.post(f"webhooks/{created.json()['webhook_id']}/test")
        assert test.json()["response_status"] == 302
        assert len(hook.arrivals) == 1 and len(metadata.arrivals) == 1
        assert listener.count == 0
    finally:
        listener.close()


def test_listed_hosts_are_reached_and_only_they(boss, receiver, settings):
    hook = receiver()
    refused = _create(boss, hook.url)
    assert refused.status_code == 400 and "https://" in refused.json()["error"]["message"]
    settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.0/8"]
    created = _create(boss, hook.url)
    assert created.status_code == 201
    assert boss.post(f"webhooks/{created.json()['webhook_id']}/test").json()["success"] is True
    # Removed from the list later: the next delivery is refused (checked at every send).
    settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS = []
    test = boss.post(f"webhooks/{created.json()['webhook_id']}/test").json()
    assert test["success"] is False and "must use https://" in test["error_message"]
    assert len(hook.arrivals) == 1

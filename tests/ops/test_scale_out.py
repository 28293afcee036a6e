"""Two Custody instances behave as one service: two gunicorn servers (different ports, their
own data directories, as on two machines) with one Celery worker and one beat of their own,
on one PostgreSQL database and one Redis (DB 7), sharing the artifact store and the secret
key as a deployment does. Everything is driven through HTTP, half through each instance."""

from __future__ import annotations

import os
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
import requests

from tests.conftest import OPEN_POLICY, LiveServer, fresh_database
from tests.outbox.test_faults import Celery, kill_worker_mid_archive

pytestmark = [pytest.mark.postgres, pytest.mark.celery]

REDIS_URL = "redis://127.0.0.1:6379/7"
METRICS_TOKEN = "scale-out-" + uuid.uuid4().hex
CONVERGENCE_LIMIT_SECONDS = 60
REFUSED = (403, 404)  # what may not be read looks missing


class Instance:
    def __init__(self, server: LiveServer, username: str, password: str):
        self.server = server
        self.url = server.url
        self.api = f"{server.url}/api/2.0/mlflow"
        self.v1 = f"{server.url}/api/v1"
        self.http = requests.Session()
        self.http.auth = (username, password)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the scale-out test needs PostgreSQL: set DATABASE_URL=postgres://...")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"the scale-out test needs Redis on {REDIS_URL}: {exc}")
    workdir = tmp_path_factory.mktemp("custody-scale-out")
    shared = {
        "REDIS_URL": REDIS_URL,
        "CUSTODY_METRICS_TOKEN": METRICS_TOKEN,
        "CUSTODY_DEFAULT_PERMISSION": "NONE",
        # The reconciler archives for no request; slow here, so that the archiving is done by
        # the outbox jobs that the promotions' requests wrote.
        "CUSTODY_RECONCILE_SECONDS": "600",
        "LOG_LEVEL": "INFO",
    }
    with fresh_database(workdir, "custody_scale_out") as database_url:
        servers = []
        for name in ("a", "b"):
            home = workdir / name
            home.mkdir()
            server = LiveServer(home, database_url, shared)
            server.env["REDIS_URL"] = REDIS_URL  # LiveServer drops the caller's REDIS_URL
            server.artifact_root = workdir / "artifacts"  # one store, as S3 would be
            server.env["CUSTODY_ARTIFACT_ROOT"] = str(server.artifact_root)
            server.username = f"admin-{name}"
            servers.append(server)
        servers[1].env["SECRET_KEY"] = servers[0].env["SECRET_KEY"]
        svc = SimpleNamespace(
            a=Instance(servers[0], servers[0].username, servers[0].password),
            # The same user on both: page tokens and caches are per caller.
            b=Instance(servers[1], servers[0].username, servers[0].password),
            servers=servers,
            server=servers[0],  # the one whose environment the worker and beat share
            # Beside the web servers, as on a machine of its own.
            worker=Celery(servers[0], "worker"),
            beat=Celery(servers[0], "beat"),
            database_url=database_url,
        )
        try:
            for server in servers:
                server.start()
            svc.worker.start()
            svc.beat.start()
            svc.worker.wait_for("ready.")
            yield svc
        finally:
            # A test replaces the worker it kills: stop whichever runs now.
            svc.beat.stop()
            svc.worker.stop()
            for server in servers:
                server.stop()
            redis.Redis.from_url(REDIS_URL).flushdb()


def sql(database_url: str, query: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(query, params).fetchall()


def wait_until(condition, what: str, limit: float = CONVERGENCE_LIMIT_SECONDS) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {limit} s")


def model_in_staging(svc, name: str, versions: int) -> None:
    a = svc.a
    run = a.http.post(f"{a.api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    assert a.http.post(f"{a.api}/registered-models/create", json={"name": name}).ok
    assert a.http.put(f"{a.v1}/models/{name}/policy", json=OPEN_POLICY).status_code == 200
    for i in range(versions):
        via = svc.a if i % 2 == 0 else svc.b
        created = via.http.post(
            f"{via.api}/model-versions/create",
            json={"name": name, "source": f"runs:/{run['run_id']}/model"},
        )
        assert created.status_code == 200, created.text
        moved = transition(via, name, i + 1, "Staging")
        assert moved.status_code == 200, moved.text


def transition(instance: Instance, name: str, version: int, stage: str) -> requests.Response:
    return instance.http.post(
        f"{instance.api}/model-versions/transition-stage",
        json={"name": name, "version": str(version), "stage": stage},
        timeout=120,
    )


def stages(instance: Instance, name: str) -> dict[int, str]:
    found = instance.http.get(
        f"{instance.api}/model-versions/search", params={"filter": f"name='{name}'"}
    )
    assert found.status_code == 200, found.text
    return {
        int(mv["version"]): mv["current_stage"] for mv in found.json().get("model_versions", [])
    }


def test_concurrent_promotions_through_both_instances_keep_one_production_version(service):
    svc, name = service, f"race-{uuid.uuid4().hex[:6]}"
    versions = 6
    model_in_staging(svc, name, versions)
    answers: dict[int, requests.Response] = {}
    barrier = threading.Barrier(versions)

    def promote(version: int) -> None:
        via = svc.a if version % 2 else svc.b
        barrier.wait()
        answers[version] = transition(via, name, version, "Production")

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(1, versions + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers.values())
    assert all(s == 200 or 400 <= s < 500 for s in statuses), {
        v: (r.status_code, r.text[:200]) for v, r in answers.items()
    }
    assert 200 in statuses
    # Both instances see the same registry, with exactly one version in Production.
    seen_a, seen_b = stages(svc.a, name), stages(svc.b, name)
    assert seen_a == seen_b
    assert list(seen_a.values()).count("Production") == 1, seen_a
    rows = sql(
        svc.database_url,
        "SELECT count(*) FROM registry_modelversion mv JOIN registry_registeredmodel rm "
        "ON rm.id = mv.registered_model_id WHERE rm.name = %s AND mv.current_stage = "
        "'Production'",
        (name,),
    )
    assert rows == [(1,)]
    # The superseded Staging versions older than the winner are archived by the worker.
    winner = next(v for v, s in seen_a.items() if s == "Production")
    wait_until(
        lambda: all(s != "Staging" for v, s in stages(svc.b, name).items() if v < winner),
        "archiving after the race",
    )


def test_login_throttle_counts_across_instances(service):
    svc = service
    username = f"tess-{uuid.uuid4().hex[:4]}"
    password = svc.servers[0].create_user(username, "data-scientist")
    for via in (svc.a, svc.b):  # each instance verifies the password and remembers it
        signed_in = requests.get(
            f"{via.api}/experiments/search", params={"max_results": 1}, auth=(username, password)
        )
        assert signed_in.status_code == 200, signed_in.text
    wrong = (username, "not-the-password")
    for i in range(10):  # accounts.throttle.FAILED_LOGIN_LIMIT, alternating instances
        via = svc.a if i % 2 == 0 else svc.b
        refused = requests.get(
            f"{via.api}/experiments/search", params={"max_results": 1}, auth=wrong
        )
        assert refused.status_code == 401, (i, refused.status_code, refused.text)
    # A remembered password checks the counter at the cache poll interval (0.5 s).
    time.sleep(1.0)
    for via in (svc.a, svc.b):  # even the right password, on either instance
        locked = requests.get(
            f"{via.api}/experiments/search", params={"max_results": 1}, auth=(username, password)
        )
        assert locked.status_code == 429, locked.text
        assert locked.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_page_tokens_and_sessions_work_across_instances(service):
    svc = service
    exp = svc.a.http.post(
        f"{svc.a.api}/experiments/create", json={"name": f"pages-{uuid.uuid4().hex[:6]}"}
    ).json()["experiment_id"]
    for i in range(5):
        via = svc.a if i % 2 else svc.b
        created = via.http.post(
            f"{via.api}/runs/create", json={"experiment_id": exp, "run_name": f"r{i}"}
        )
        assert created.status_code == 200, created.text
    seen, token, hops = [], None, 0
    while True:
        via = svc.a if hops % 2 == 0 else svc.b  # each page from the other instance
        body = {
            "experiment_ids": [exp],
            "max_results": 2,
            **({"page_token": token} if token else {}),
        }
        page = via.http.post(f"{via.api}/runs/search", json=body)
        assert page.status_code == 200, page.text
        seen += [r["info"]["run_name"] for r in page.json().get("runs", [])]
        token, hops = page.json().get("next_page_token"), hops + 1
        if not token:
            break
    assert sorted(seen) == [f"r{i}" for i in range(5)] and hops == 3

    # A browser signs in on instance A and carries on on instance B with the same cookie.
    browser = requests.Session()
    form = browser.get(f"{svc.a.url}/login/")
    assert form.status_code == 200
    signed_in = browser.post(
        f"{svc.a.url}/login/",
        data={
            "username": svc.servers[0].username,
            "password": svc.servers[0].password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{svc.a.url}/login/"},
        allow_redirects=False,
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    assert "sessionid" in browser.cookies
    page = browser.get(f"{svc.b.url}/experiments/", allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    assert svc.servers[0].username in page.text  # signed in as that user


def test_a_grant_revoked_through_one_instance_is_refused_on_the_other_within_a_second(service):
    svc = service
    username = f"dana-{uuid.uuid4().hex[:4]}"
    dana = requests.Session()
    dana.auth = (username, svc.servers[0].create_user(username, "data-scientist"))
    exp = svc.a.http.post(
        f"{svc.a.api}/experiments/create", json={"name": f"granted-{uuid.uuid4().hex[:6]}"}
    ).json()["experiment_id"]
    read = f"{svc.b.api}/experiments/get"
    # Default NONE: an experiment one may not read looks missing (404).
    assert dana.get(read, params={"experiment_id": exp}).status_code in REFUSED
    grants = {"grants": [{"user": username, "level": "READ"}]}
    granted = svc.a.http.put(f"{svc.a.v1}/experiments/{exp}/permissions", json=grants)
    assert granted.status_code == 200, granted.text
    wait_until(
        lambda: dana.get(read, params={"experiment_id": exp}).status_code == 200,
        "the grant reaching instance B",
        limit=5,
    )
    revoked = svc.a.http.put(f"{svc.a.v1}/experiments/{exp}/permissions", json={"grants": []})
    assert revoked.status_code == 200, revoked.text
    revoked_at = time.monotonic()
    first_refusal = None
    while time.monotonic() - revoked_at < 1.0:
        if dana.get(read, params={"experiment_id": exp}).status_code in REFUSED:
            first_refusal = time.monotonic() - revoked_at
            break
        time.sleep(0.05)
    # CUSTODY_CACHE_POLL_SECONDS (0.5 s) bounds how long any process may act on the grant.
    assert first_refusal is not None, "instance B still served the revoked grant after 1 s"
    time.sleep(1.0)
    for via in (svc.a, svc.b):
        refused = dana.get(f"{via.api}/experiments/get", params={"experiment_id": exp})
        assert refused.status_code in REFUSED, refused.text
    print(f"\nrevoked on A, first refused on B after {first_refusal:.2f} s")


# The poll interval the instances run with (CUSTODY_CACHE_POLL_SECONDS's default): the most a
# poller that sends `Cache-Control: max-stale` may be behind a committed move.
POLL_SECONDS = 0.5


@pytest.mark.parametrize(
    ("cache_control", "bound", "pause"),
    [("", 0.0, 0.3), ("max-stale", POLL_SECONDS, 0.9)],
    ids=["never-stale", "max-stale-within-the-poll-interval"],
)
def test_serving_reads_are_never_stale_once_a_move_has_answered_on_either_instance(
    service, cache_control, bound, pause
):
    """Pollers on both instances (threads with keep-alive connections, as serving layers poll)
    resolve an alias while it moves back and forth through instance A: every poll sent after a
    move was answered, and answered before the next move was sent, shows that move's version.
    A poller that accepts staleness (`Cache-Control: max-stale`) is judged on the polls sent
    more than the poll interval after the move answered.
    (Seen failing when the resolution read its versions at the poll interval rather than per
    request: 115 stale answers on B. The narrower race, a poll answered by another thread's
    read begun before the move committed, is pinned in tests/core/test_shared_version_reads.py.)"""
    svc = service
    name = f"never-stale-{uuid.uuid4().hex[:6]}"
    model_in_staging(svc, name, versions=2)
    alias = f"{svc.a.api}/registered-models/alias"
    headers = {"Cache-Control": cache_control} if cache_control else {}

    def move(version: int) -> None:
        moved = svc.a.http.post(
            alias, json={"name": name, "alias": "live", "version": str(version)}
        )
        assert moved.status_code == 200, moved.text

    move(1)
    polls: list[tuple[str, float, float, int]] = []  # instance, sent, answered, version
    failures: list[str] = []
    stop = threading.Event()

    def poll(instance: Instance, label: str) -> None:
        with requests.Session() as http:
            http.auth = instance.http.auth
            while not stop.is_set():
                sent = time.monotonic()
                answer = http.get(
                    f"{instance.v1}/resolve",
                    params={"uri": f"models:/{name}@live"},
                    headers=headers,
                )
                if answer.status_code != 200:
                    failures.append(f"{label}: {answer.status_code} {answer.text[:200]}")
                    return
                polls.append((label, sent, time.monotonic(), answer.json()["version"]))

    pollers = [
        threading.Thread(target=poll, args=(instance, label))
        for instance, label in ((svc.a, "a"), (svc.b, "b"))
        for _ in range(4)
    ]
    for thread in pollers:
        thread.start()
    moves: list[tuple[float, float, int]] = []  # sent, answered, version
    try:
        time.sleep(0.3)
        for version in (2, 1, 2, 1, 2, 1, 2):
            sent = time.monotonic()
            move(version)
            moves.append((sent, time.monotonic(), version))
            time.sleep(pause)
    finally:
        stop.set()
        for thread in pollers:
            thread.join(60)
    assert not failures, failures[:3]

    judged = {"a": 0, "b": 0}
    stale = []
    behind_within_bound = 0  # allowed with max-stale: shows the directive was taken
    for (_, answered, version), following in zip(
        moves, [*moves[1:], (float("inf"), 0, 0)], strict=True
    ):
        for label, sent, received, seen in polls:
            if answered < sent <= answered + bound and received < following[0]:
                behind_within_bound += seen != version
            if answered + bound < sent and received < following[0]:
                judged[label] += 1
                if seen != version:
                    stale.append((label, round(sent - answered, 4), seen, version))
    assert not stale, (
        f"{len(stale)} stale answers (instance, s after the move, seen, moved to): {stale[:5]}"
    )
    # Every interval was polled on both instances, many times (else this proved nothing).
    assert judged["a"] > 20 and judged["b"] > 20, judged
    print(
        f"\n{len(polls)} polls, {judged} judged against 7 moves: none stale; "
        f"{behind_within_bound} behind within the {bound} s allowed"
    )


def test_a_run_deleted_through_one_instance_refuses_uploads_on_the_other_within_a_second(
    service,
):
    """Instance B decides uploads to a run it has seen from its cache (no look-up); the run's
    deletion through A, and a restore behind every service's back (raw SQL, which only the
    database's trigger sees), reach B within the poll interval."""
    svc = service
    exp = svc.a.http.post(
        f"{svc.a.api}/experiments/create", json={"name": f"uploads-{uuid.uuid4().hex[:6]}"}
    ).json()["experiment_id"]
    run = svc.a.http.post(f"{svc.a.api}/runs/create", json={"experiment_id": exp}).json()
    run_id = run["run"]["info"]["run_id"]
    files = f"{svc.b.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts"
    names = iter(range(10_000))

    def upload(via: Instance = svc.b) -> int:
        url = files.replace(svc.b.url, via.url)
        return via.http.put(f"{url}/f{next(names)}.bin", data=b"x" * 1024).status_code

    for _ in range(4):  # every worker of B has seen the run
        assert upload() == 200
    deleted = svc.a.http.post(f"{svc.a.api}/runs/delete", json={"run_id": run_id})
    assert deleted.status_code == 200, deleted.text
    refused_after = wait_until(lambda: upload() == 400, "B refusing the deleted run", limit=5)
    assert refused_after < 1.0, f"B took uploads for {refused_after:.2f} s after the delete"
    assert upload(svc.a) == 400
    restored = sql(
        svc.database_url,
        "UPDATE tracking_run SET lifecycle_stage = 'active', deleted_time = NULL "
        "WHERE run_id = %s RETURNING run_id",
        (run_id,),
    )
    assert restored == [(run_id,)]
    accepted_after = wait_until(lambda: upload() == 200, "B taking the restored run", limit=5)
    assert accepted_after < 1.0, f"B refused for {accepted_after:.2f} s after the restore"
    time.sleep(1.0)
    for via in (svc.a, svc.b, svc.b, svc.b):
        assert upload(via) == 200
    print(
        f"\ndeleted on A, refused on B after {refused_after:.2f} s; restored by SQL, taken "
        f"after {accepted_after:.2f} s"
    )


def test_the_worker_killed_mid_archive_converges_and_carries_the_request_id(service):
    svc, name = service, f"killed-{uuid.uuid4().hex[:6]}"
    model_in_staging(svc, name, 2)
    promoted = kill_worker_mid_archive(svc, name, lambda: transition(svc.b, name, 2, "Production"))
    assert stages(svc.a, name)[1] == "Staging"
    svc.worker = Celery(svc.servers[0], "worker")
    svc.worker.start()
    # The job's lease (the task's 30 s time limit + 10 s from its start) ends, the relay sends
    # it again (beat, every 5 s) and the new worker runs it.
    took = wait_until(
        lambda: stages(svc.a, name)[1] == "Archived", "archiving after the kill", limit=120
    )
    print(f"\nworker killed mid-archive: archived {took:.1f} s after the restart")
    # Re-sent by the relay, the job still carries the id of the promotion's request, and the
    # archiving's audit event has it.
    archived = sql(
        svc.database_url,
        "SELECT request_id FROM audit_auditevent WHERE object_name = %s "
        "AND after->>'current_stage' = 'Archived'",
        (f"{name}/1",),
    )
    assert archived == [(promoted.headers["X-Request-ID"],)]


def test_metrics_add_up_every_worker_of_an_instance(service):
    svc = service
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def served() -> float:
        text = requests.get(f"{svc.a.url}/metrics", headers=auth).text
        prefix = 'custody_http_requests_total{method="GET",route="version",status="200"} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = served()
    for _ in range(40):  # a new connection each: gunicorn's two workers share them
        assert requests.get(f"{svc.a.url}/version", headers={"Connection": "close"}).ok
    assert served() - before == 40
    log = svc.servers[0].server_log()
    pids = {
        line.split("pid: ")[1].split(")")[0]
        for line in log.splitlines()
        if "Booting worker" in line
    }
    assert len(pids) >= 2, log[-2000:]
    text = requests.get(f"{svc.b.url}/metrics", headers=auth).text
    assert "custody_production_versions" in text and "custody_celery_queue_depth" in text


def test_nothing_is_lost(service):
    svc = service
    wait_until(
        lambda: not sql(svc.database_url, "SELECT id FROM outbox_outboxjob WHERE done_at IS NULL"),
        "every outbox job done",
    )
    for via in (svc.a, svc.b):
        verified = via.http.get(f"{via.v1}/audit/verify", timeout=120)
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True, verified.text
    assert requests.get(f"{svc.a.url}/ready").json()["checks"]["broker"] == "ok"

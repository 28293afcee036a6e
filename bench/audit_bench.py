"""Audit benchmark, one command:

    .venv/bin/python bench/audit_bench.py                    # SQLite file in a temp dir
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/custody_bench_audit \\
        .venv/bin/python bench/audit_bench.py --events 1000000

(a) What the audit write adds to a stage transition: the registry's transition service
    (None <-> Staging on one version, each a full transaction with the row lock) timed with
    auditing on, then with `audit.services.record` replaced by a no-op. p50/p95 in ms.
(c) Concurrent audited writes (`--writers 16`, PostgreSQL): that many processes, each with its
    own connection, create experiments (one audited transaction each) for `--seconds`, first
    with events chained after commit (the default on PostgreSQL), then with the chain head
    locked from the event to the commit (CUSTODY_AUDIT_CHAINING=inline, as before). Writes/s
    and p50/p99 per write (the transaction and its chaining); then the chain is verified
    and checked gap-free.
(b) Export throughput: N/10 and then N events with a valid chain are bulk-inserted (not
    timed); at each size `manage.py export_audit --format csv` (the API's stream) and
    `manage.py verify_audit --file` run as processes of their own: events/s and each
    process's own peak RSS (constant memory: it must not grow with the number of events).

The database named by DATABASE_URL is dropped and recreated (PostgreSQL) or a fresh SQLite
file is used. Prints a Markdown table."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _fresh_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup(workdir: Path) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        _fresh_database(url)
    else:
        url = f"sqlite:///{workdir / 'audit-bench.sqlite3'}"
        os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("CUSTODY_DATA_DIR", str(workdir))
    os.environ.setdefault("SECRET_KEY", "audit-bench-" + "x" * 40)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url.split("@")[-1] if "@" in url else url


def analyze() -> None:
    """Planner statistics after a bulk load, as autovacuum would gather them on a live
    database within a minute; without them PostgreSQL plans joins for empty tables."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_transitions(rounds: int) -> dict[str, tuple[float, float]]:
    from unittest import mock

    from audit import services as audit_services
    from governance.models import ModelPolicy
    from registry import services
    from tracking import services as tracking

    run = tracking.run_create(experiment_id="0", user_id="b", run_name="r", start_time=1, tags=[])
    services.registered_model_create(name="bench")
    services.model_version_create(name="bench", source=f"runs:/{run.run_id}/m")
    ModelPolicy.objects.create(model_id=1, required_tags=[], production_approvals=0)

    def timed() -> list[float]:
        samples = []
        for i in range(rounds):
            target = "Staging" if i % 2 == 0 else "None"
            start = time.perf_counter()
            services.model_version_transition_stage(name="bench", version=1, stage=target)
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    timed()  # warm-up
    with_audit = timed()
    with mock.patch.object(audit_services, "record", lambda **kwargs: None):
        without = timed()
    return {
        "with audit": (statistics.median(with_audit), percentile(with_audit, 0.95)),
        "without audit (record patched to a no-op)": (
            statistics.median(without),
            percentile(without, 0.95),
        ),
    }


def _writer(mode: str, write: str, index: int, seconds: float, start, out) -> None:
    """One writer process: audited writes until the time is up; sends its latencies."""
    from django.conf import settings
    from django.db import connections, transaction

    from audit import services as audit_services
    from tracking import services as tracking

    def record_only(name: str) -> None:
        with transaction.atomic():
            audit_services.record(action="bench.write", object_type="bench", object_id=name)

    do_write = tracking.experiment_create if write == "experiment" else None

    settings.CUSTODY_AUDIT_CHAINING = mode
    connections.close_all()
    samples: list[float] = []
    start.wait()
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        if do_write is None:
            record_only(f"{mode}-{index}-{n}")
        else:
            do_write(name=f"{mode}-{index}-{n}")
        samples.append((time.perf_counter() - began) * 1000)
        n += 1
    connections.close_all()
    out.put(samples)


def bench_writers(writers: int, seconds: float, write: str) -> dict[str, dict[str, float]]:
    import multiprocessing

    from django.db import connections

    from audit.models import AuditEvent
    from audit.selectors import verify_live_chain

    context = multiprocessing.get_context("fork")
    results: dict[str, dict[str, float]] = {}
    for mode in ("deferred", "inline"):
        connections.close_all()  # each child opens its own
        start, out = context.Barrier(writers + 1), context.Queue()
        procs = [
            context.Process(target=_writer, args=(mode, write, i, seconds, start, out))
            for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        start.wait()
        began = time.perf_counter()
        samples = [x for _ in procs for x in out.get()]
        elapsed = time.perf_counter() - began
        for proc in procs:
            proc.join()
        verified = verify_live_chain(anchors_url="")
        seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
        results[mode] = {
            "writes": len(samples),
            "per_s": len(samples) / elapsed,
            "p50": statistics.median(samples),
            "p99": percentile(samples, 0.99),
            "verified": verified.ok,
            "gap_free": seqs == list(range(1, len(seqs) + 1)),
            "events": len(seqs),
        }
    return results


def insert_events(count: int) -> None:
    """A valid chain of `count` events, bulk-inserted past the service (setup only)."""
    from datetime import UTC, datetime, timedelta

    from django.db import transaction

    from audit.chain import event_hash, format_time
    from audit.models import AuditChainHead, AuditEvent

    head = AuditChainHead.objects.get(pk=1)
    seq, prev = head.last_seq, head.last_hash
    base = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[AuditEvent] = []
    for i in range(count):
        seq += 1
        created = base + timedelta(milliseconds=i)
        content = {
            "seq": seq,
            "created_at": format_time(created),
            "actor_user_id": 1,
            "actor_username": "bench",
            "auth_method": "token",
            "token_id": 1,
            "action": "model_version.tag.set",
            "outcome": "success",
            "object_type": "model_version",
            "object_id": str(i % 5000),
            "object_name": f"fraud/{i % 5000}",
            "model_name": f"model-{i % 50}",
            "model_version": i % 5000,
            "before": None,
            "after": {"stage_note": f"value {i}"},
            "reason": "",
            "request_id": f"req-{i}",
            "client_ip": "127.0.0.1",
            "user_agent": "bench",
            "prev_hash": prev,
        }
        prev = event_hash(content)
        batch.append(AuditEvent(**{**content, "created_at": created}, hash=prev))
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    if batch:
        AuditEvent.objects.bulk_create(batch)
    with transaction.atomic():
        AuditChainHead.objects.filter(pk=1).update(last_seq=seq, last_hash=prev)
    analyze()


def _child(args: list[str]) -> tuple[float, float]:
    """Run `manage.py <args>` as its own process: (seconds, that process's peak RSS in MB),
    read with wait4, so the figure is the command's own and not the seeding's."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], env=os.environ)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def bench_export(count: int, workdir: Path) -> list[dict[str, float]]:
    """The shell's export (`export_audit`, the same stream as the API's) and verification
    (`verify_audit --file`) at a tenth of `count` events and at `count`: the export's peak
    memory must not grow with the number of events."""
    rows, seeded = [], 0
    for size in sorted({max(1, count // 10), count}):
        start = time.perf_counter()
        insert_events(size - seeded)
        seed_s, seeded = time.perf_counter() - start, size
        out = workdir / f"audit-{size}.csv"
        export_s, export_rss = _child(["export_audit", "--format", "csv", "-o", str(out)])
        verify_s, verify_rss = _child(["verify_audit", "--file", str(out)])
        rows.append(
            {
                "events": size,
                "seed_s": seed_s,
                "export_mb": out.stat().st_size / 1e6,
                "export_events_per_s": size / export_s,
                "export_rss_mb": export_rss,
                "verify_events_per_s": size / verify_s,
                "verify_rss_mb": verify_rss,
            }
        )
        out.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--writers", type=int, default=16, help="concurrent writers for (c)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of (c) per mode")
    parser.add_argument(
        "--write",
        choices=["experiment", "record"],
        default="experiment",
        help="(c)'s write: an experiment's creation (the whole service), or a transaction "
        "holding only its audit event (the audit path alone)",
    )
    parser.add_argument(
        "--only-writers", action="store_true", help="run only (c), the concurrent writers"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = setup(Path(tmp))
        from django.db import connection

        postgres = connection.vendor == "postgresql"
        concurrent = bench_writers(args.writers, args.seconds, args.write) if postgres else {}
        if args.only_writers:
            print_writers(database, args, concurrent)
            return
        transitions = bench_transitions(args.rounds)
        exports = bench_export(args.events, Path(tmp))
    print_writers(database, args, concurrent)
    print(f"# Audit benchmark ({database}, {args.rounds} transitions, {args.events:,} events)\n")
    print("| measurement | p50 ms | p95 ms |\n|---|---|---|")
    for label, (p50, p95) in transitions.items():
        print(f"| transition None<->Staging, {label} | {p50:.2f} | {p95:.2f} |")
    p50_on, p50_off = transitions["with audit"][0], next(iter(list(transitions.values())[1:]))[0]
    print(f"\nThe audit write adds {p50_on - p50_off:.2f} ms at p50 ({p50_on / p50_off:.2f}x).\n")
    print(
        "| events | CSV | export_audit | its peak RSS | verify_audit --file | its peak RSS |\n"
        "|---|---|---|---|---|---|"
    )
    for row in exports:
        print(
            f"| {row['events']:,} | {row['export_mb']:.0f} MB "
            f"| {row['export_events_per_s']:,.0f} events/s | {row['export_rss_mb']:.0f} MB "
            f"| {row['verify_events_per_s']:,.0f} events/s | {row['verify_rss_mb']:.0f} MB |"
        )
    print("\n(Seeding, not measured: " + ", ".join(f"{r['seed_s']:.0f} s" for r in exports) + ".)")


def print_writers(database: str, args, concurrent: dict[str, dict[str, float]]) -> None:
    if not concurrent:
        print("(c) concurrent writers: PostgreSQL only (SQLite runs one writer at a time).\n")
        return
    print(
        f"# Concurrent audited writes ({database}, {args.writers} writer processes, "
        f"{args.seconds:.0f} s per mode, writes: {args.write})\n"
    )
    print("| chaining | writes | writes/s | p50 ms | p99 ms | chain verifies | gap-free |")
    print("|---|---|---|---|---|---|---|")
    for mode, row in concurrent.items():
        print(
            f"| {mode} | {row['writes']:,} | {row['per_s']:.0f} | {row['p50']:.1f} "
            f"| {row['p99']:.1f} | {row['verified']} | {row['gap_free']} |"
        )
    print()


if __name__ == "__main__":
    main()

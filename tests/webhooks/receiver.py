"""A real local HTTP receiver, written as a receiver of MLflow webhooks is: it checks the
signature with MLflow's own scheme (mlflow.webhooks.delivery._generate_hmac_signature) and
drops repeats by X-MLflow-Delivery-Id (its idempotency check)."""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Arrival:
    delivery_id: str
    event: str
    body: dict
    headers: dict
    signature_ok: bool | None  # None: unsigned
    duplicate: bool


@dataclass
class Receiver:
    secret: str = ""
    status: int = 200
    # Hold the first request this many seconds (after recording it) before answering.
    hold_first: float = 0.0
    redirect_to: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    processed: dict[str, Arrival] = field(default_factory=dict)
    connections: int = 0

    def __post_init__(self):
        # Imported here, not in the handler: MLflow's first import takes seconds.
        from mlflow.webhooks.delivery import _generate_hmac_signature

        self._expected_signature = _generate_hmac_signature
        self.lock = threading.Lock()
        self.first_held = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._arrive(self, raw)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                conn = super().get_request()
                with receiver.lock:
                    receiver.connections += 1
                return conn

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _arrive(self, handler, raw: bytes) -> None:
        delivery_id = handler.headers.get("X-MLflow-Delivery-Id", "")
        timestamp = handler.headers.get("X-MLflow-Timestamp", "")
        signature = handler.headers.get("X-MLflow-Signature")
        payload = raw.decode("utf-8")
        signature_ok = None
        if signature is not None:
            expected = self._expected_signature(self.secret, delivery_id, timestamp, payload)
            signature_ok = hmac.compare_digest(expected, signature)
        body = json.loads(payload)
        event = f"{body.get('entity')}.{body.get('action')}" if "entity" in body else "text"
        with self.lock:
            duplicate = delivery_id in self.processed
            arrival = Arrival(
                delivery_id, event, body, dict(handler.headers), signature_ok, duplicate
            )
            self.arrivals.append(arrival)
            first = len(self.arrivals) == 1
            if not duplicate and self.status < 300:
                self.processed[delivery_id] = arrival
        if first and self.hold_first:
            self.first_held.set()
            time.sleep(self.hold_first)
        try:
            if self.redirect_to:
                handler.send_response(302)
                handler.send_header("Location", self.redirect_to)
            else:
                handler.send_response(self.status)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok")
        except OSError:
            pass  # the sender is gone (a killed worker)

    def events(self) -> list[str]:
        with self.lock:
            return [a.event for a in self.processed.values()]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Arrival]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.processed) >= count:
                    return list(self.processed.values())
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} deliveries, got {len(self.processed)}: {self.events()}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ConnectionCounter:
    """A bare TCP listener that only counts connections (any protocol, TLS included)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.count += 1
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()

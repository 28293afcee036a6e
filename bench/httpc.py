"""A small HTTP/1.1 client on http.client, for load generation.

Why not `requests`: the load generator shares two cores with the server under test and with
PostgreSQL, so the client must be cheap per request (http.client costs roughly a third of what
requests+urllib3 cost). The bytes on the wire are the ones the MLflow client sends: the same
JSON bodies, `Content-Type: application/json`, and the same User-Agent/X-MLflow-Client-Version
headers.

Two connection modes:
  * keep-alive: one persistent connection per thread (what the MLflow client does through its
    requests.Session);
  * new connection per request (`Connection: close`): every request pays connect + accept, so
    stalls in the server's accept path or a missing TCP_NODELAY show up as latency.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlencode

CLIENT_HEADERS = {
    "User-Agent": "mlflow-python-client/3.18.0",
    "X-MLflow-Client-Version": "3.18.0",
    "Accept": "*/*",
    "Accept-Encoding": "identity",
}


class HttpError(Exception):
    pass


class Response:
    __slots__ = ("status", "body", "headers", "elapsed")

    def __init__(self, status: int, body: bytes, headers: dict[str, str], elapsed: float):
        self.status = status
        self.body = body
        self.headers = headers
        self.elapsed = elapsed

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body)

    def error_code(self) -> str | None:
        try:
            data = json.loads(self.body)
        except Exception:
            return None
        return data.get("error_code") if isinstance(data, dict) else None

    def is_endpoint_missing(self) -> bool:
        """404 with ENDPOINT_NOT_FOUND or with a non-JSON body (a framework's HTML 404):
        the route does not exist on this server, as opposed to a missing resource."""
        if self.status == 405:
            return True
        if self.status != 404:
            return False
        code = self.error_code()
        return code is None or code == "ENDPOINT_NOT_FOUND"

    def short(self) -> str:
        text = self.body[:300].decode("utf-8", "replace")
        return f"HTTP {self.status}: {text}"


class Client:
    """Not thread-safe: one Client per thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        keepalive: bool = True,
        auth: tuple[str, str] | None = None,
        timeout: float = 120.0,
    ):
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0
        self.connects = 0
        self.base_headers = dict(CLIENT_HEADERS)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.base_headers["Authorization"] = f"Basic {token}"
        if not keepalive:
            self.base_headers["Connection"] = "close"

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if params:
            path = path + "?" + urlencode(params, doseq=True)
        headers = {**self.base_headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body, separators=(", ", ": ")).encode()
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        if body is not None:
            headers["Content-Length"] = str(len(body))
        start = time.perf_counter()
        for attempt in (0, 1):
            reused = self.conn is not None
            try:
                if self.conn is None:
                    self.conn = self._connect()
                # A bytes body goes out in the same send() as the headers (http.client joins
                # them), so there is no Nagle/delayed-ACK stall on the client side.
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                status = resp.status
                resp_headers = {k.lower(): v for k, v in resp.getheaders()}
                will_close = resp.will_close
            except (
                http.client.RemoteDisconnected,
                http.client.BadStatusLine,
                BrokenPipeError,
                ConnectionResetError,
                ConnectionAbortedError,
            ) as exc:
                self.close()
                if reused and attempt == 0:
                    # The server closed an idle keep-alive connection under us; a real client
                    # (urllib3) would reconnect and resend too. Counted, not hidden.
                    self.reconnects += 1
                    continue
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            elapsed = time.perf_counter() - start
            if not self.keepalive or will_close:
                self.close()
            return Response(status, data, resp_headers, elapsed)
        raise HttpError("unreachable")

    # Conveniences -----------------------------------------------------------------------
    def post(self, path: str, payload: Any) -> Response:
        return self.request("POST", path, json_body=payload)

    def get(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        return self.request("GET", path, params=params, headers=headers)

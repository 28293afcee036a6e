"""Reading an MLflow server through its REST API, as any MLflow client does: the same
endpoints, the same credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN),
so OSS and managed servers alike can be read."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

PAGE = 1000
ATTEMPTS = 4
PROXY_SCHEME = "mlflow-artifacts:/"


class SourceError(Exception):
    """The source server refused or failed a request the import cannot do without."""


def display_uri(uri: str) -> str:
    """The tracking URI without credentials, as recorded in the audit trail."""
    parts = urlsplit(uri.rstrip("/"))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class MlflowSource:
    def __init__(self, uri: str, *, pool: int = 16, timeout: float = 120.0):
        self.uri = uri.rstrip("/")
        self.server = display_uri(uri)
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=5,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,  # every call here only reads, POST searches included
        )
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif user:
            self.session.auth = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self.session.verify = False
        elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self.session.verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]

    # -- plumbing

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.uri}/{path}"
        for attempt in range(ATTEMPTS):
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
                break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                # A connection dropped mid-answer (urllib3 retries only those dropped before
                # one): every call here reads, so it is asked again.
                if attempt == ATTEMPTS - 1:
                    raise SourceError(f"{method} {path}: {exc}") from None
                time.sleep(0.5 * (attempt + 1))
            except requests.RequestException as exc:
                raise SourceError(f"{method} {path}: {exc}") from None
        if response.status_code >= 400:
            raise SourceError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("GET", f"api/2.0/mlflow/{path}", params=params).json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"api/2.0/mlflow/{path}", json=body).json()

    def _pages(self, fetch, items: str) -> Iterator[list[dict[str, Any]]]:
        token = None
        while True:
            page = fetch(token)
            yield page.get(items, [])
            token = page.get("next_page_token")
            if not token:
                return

    # -- tracking

    def experiments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for page in self._pages(
            lambda t: self.post(
                "experiments/search",
                {"max_results": PAGE, "view_type": "ALL", **({"page_token": t} if t else {})},
            ),
            "experiments",
        ):
            result += page
        return result

    def run_pages(self, experiment_id: str) -> Iterator[list[dict[str, Any]]]:
        return self._pages(
            lambda t: self.post(
                "runs/search",
                {
                    "experiment_ids": [experiment_id],
                    "run_view_type": "ALL",
                    "max_results": PAGE,
                    **({"page_token": t} if t else {}),
                },
            ),
            "runs",
        )

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        for page in self._pages(
            lambda t: self.get(
                "metrics/get-history",
                {
                    "run_id": run_id,
                    "metric_key": key,
                    "max_results": 25000,
                    **({"page_token": t} if t else {}),
                },
            ),
            "metrics",
        ):
            points += page
        return points

    def logged_models(self, experiment_ids: list[str]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for page in self._pages(
            lambda t: self.post(
                "logged-models/search",
                {
                    "experiment_ids": experiment_ids,
                    "max_results": 100,
                    **({"page_token": t} if t else {}),
                },
            ),
            "models",
        ):
            result += page
        return result

    # -- registry

    def registered_models(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for page in self._pages(
            lambda t: self.get(
                "registered-models/search",
                {"max_results": PAGE, **({"page_token": t} if t else {})},
            ),
            "registered_models",
        ):
            result += page
        return result

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        quoted = "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
        result: list[dict[str, Any]] = []
        for page in self._pages(
            lambda t: self.get(
                "model-versions/search",
                {
                    "filter": f"name={quoted}",
                    "max_results": PAGE,
                    **({"page_token": t} if t else {}),
                },
            ),
            "model_versions",
        ):
            result += page
        return result

    # -- artifacts

    def list_artifacts(self, artifact_uri: str, run_id: str | None) -> list[tuple[str, int]]:
        """Every file below an artifact root, as (path below the root, size), walking the
        directories. Proxied roots (mlflow-artifacts:/) are read through the artifact proxy;
        a run's other roots through the run artifact API the server reads for its clients."""
        files: list[tuple[str, int]] = []
        pending = [""]
        while pending:
            directory = pending.pop()
            for entry in self._list_dir(artifact_uri, run_id, directory):
                path = entry["path"]
                if artifact_uri.startswith(PROXY_SCHEME):
                    path = f"{directory}/{path}" if directory else path
                if entry.get("is_dir"):
                    pending.append(path)
                else:
                    files.append((path, int(entry.get("file_size") or 0)))
        return sorted(files)

    def _list_dir(self, artifact_uri: str, run_id: str | None, directory: str) -> list[dict]:
        if artifact_uri.startswith(PROXY_SCHEME):
            root = artifact_uri[len(PROXY_SCHEME) :].strip("/")
            full = f"{root}/{directory}" if directory else root
            return (
                self._call("GET", "api/2.0/mlflow-artifacts/artifacts", params={"path": full})
                .json()
                .get("files", [])
            )
        if run_id is None:
            raise SourceError(
                f"artifacts at {artifact_uri} are not served through the server's artifact "
                "proxy (mlflow server --serve-artifacts); they cannot be read over HTTP"
            )
        params = {"run_id": run_id, **({"path": directory} if directory else {})}
        return self.get("artifacts/list", params).get("files", [])

    def open_artifact(self, artifact_uri: str, run_id: str | None, path: str) -> IO[bytes]:
        if artifact_uri.startswith(PROXY_SCHEME):
            root = artifact_uri[len(PROXY_SCHEME) :].strip("/")
            response = self._call(
                "GET", f"api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{path}')}", stream=True
            )
        else:
            response = self._call(
                "GET", "get-artifact", params={"path": path, "run_uuid": run_id}, stream=True
            )
        response.raw.decode_content = True
        return response.raw

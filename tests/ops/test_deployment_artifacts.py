"""The deployment artifacts, checked as far as this machine allows: the compose file against
the Compose specification, the Kubernetes manifests rendered by kustomize (`kubectl
kustomize`, offline) and validated against the Kubernetes 1.37 schemas, the Dockerfile's
promises read from the file, and gunicorn's worker count from the core count. No image is
built here (no base image can be pulled on these machines); docs/operations.md says so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def test_the_compose_file_follows_the_compose_specification():
    done = subprocess.run(
        [
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            DEPLOY / "compose.yaml",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "migrate", "postgres", "redis", "minio"} <= set(services)
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["web"]["command"][:3] == ["gunicorn", "-c", "config/gunicorn.conf.py"]
    assert "beat" in services["beat"]["command"] and "worker" in services["worker"]["command"]
    assert services["web"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["web"]["environment"]["CUSTODY_ARTIFACT_ROOT"].startswith("s3://")


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("needs kubectl for `kubectl kustomize` (apt-get install kubectl)")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_the_kubernetes_manifests_validate_against_the_schemas(manifests, tmp_path):
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(manifests))
    done = subprocess.run(
        [
            BIN / "kubernetes-validate",
            "--strict",
            "-k",
            "1.37.0",
            rendered,
            DEPLOY / "kubernetes" / "secret.example.yaml",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = sorted(f"{m['kind']}/{m['metadata']['name']}" for m in manifests)
    assert kinds == [
        "ConfigMap/custody",
        "Deployment/custody-beat",
        "Deployment/custody-web",
        "Deployment/custody-worker",
        "HorizontalPodAutoscaler/custody-web",
        "HorizontalPodAutoscaler/custody-worker",
        "Job/custody-migrate",
        "Namespace/custody",
        "PodDisruptionBudget/custody-web",
        "Service/custody-web",
    ]


def _by(manifests, kind, name):
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_the_manifests_probe_limit_migrate_and_scale(manifests):
    web = _by(manifests, "Deployment", "custody-web")["spec"]["template"]["spec"]
    (container,) = web["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for kind, name in (
        ("Deployment", "custody-web"),
        ("Deployment", "custody-worker"),
        ("Deployment", "custody-beat"),
        ("Job", "custody-migrate"),
    ):
        pod = _by(manifests, kind, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"], name
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["image"].startswith("registry.example.com/custody:"), name
    job = _by(manifests, "Job", "custody-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    hpa = _by(manifests, "HorizontalPodAutoscaler", "custody-web")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "custody-web" and hpa["minReplicas"] >= 2
    beat = _by(manifests, "Deployment", "custody-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_the_dockerfile_builds_from_the_lock_file_as_a_user_without_privileges():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert "--require-hashes -r /tmp/requirements-run.lock" in text
    assert "manage.py collectstatic" in text
    assert re.search(r"^USER 10001", runtime, re.M)
    assert 'CMD ["gunicorn", "-c", "config/gunicorn.conf.py"' in runtime
    assert (ROOT / "requirements-run.lock").read_text().count("--hash=sha256:") > 20


def test_the_image_collectstatic_step_works_from_a_clean_tree(tmp_path):
    """The Dockerfile's collectstatic command, run here with its environment."""
    env = {
        **os.environ,
        "SECRET_KEY": "collectstatic-only",
        "CUSTODY_DATA_DIR": str(tmp_path / "build-data"),
        "CUSTODY_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
    }
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert (tmp_path / "static" / "staticfiles.json").exists()  # hashed names, as served


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [("postgres://x@db/custody", min(2 * (os.cpu_count() or 1) + 1, 8)), ("", 2)],
)
def test_gunicorn_sizes_its_workers_from_the_core_count(database_url, expected):
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("WEB_CONCURRENCY", None)
    printed = subprocess.run(
        [
            BIN / "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "--print-config",
            "config.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition("=") for line in printed.splitlines())
    )
    assert settings["workers"] == str(expected)
    assert settings["threads"] == "4" and settings["worker_class"] == "gthread"
    assert settings["limit_request_line"] == "0"

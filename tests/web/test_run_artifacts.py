"""Artifacts on the run page: browse directories, preview text (escaped) and raster images,
download links through the proxy; bad paths are explained, never followed; other users'
private runs stay hidden."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.personas import new_run

pytestmark = pytest.mark.django_db
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def test_browse_preview_and_download(people, settings, tmp_path):
    settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    alice = people["alice"]
    run_id = new_run(alice)
    info = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"]
    prefix = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    for path, body, kind in (
        ("notes/readme.txt", b"<script>alert(1)</script> hello", "text/plain"),
        ("plots/roc.png", PNG, "image/png"),
        ("plots/evil.svg", b"<svg onload='alert(1)'/>", "image/svg+xml"),
    ):
        put = alice.client.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/{path}", body, content_type=kind
        )
        assert put.status_code == 200, put.content
    browser = Client()
    browser.force_login(alice.user)
    root = browser.get(f"/runs/{run_id}/").content.decode()
    assert "?artifacts=notes#artifacts" in root and "?artifacts=plots#artifacts" in root
    text = browser.get(f"/runs/{run_id}/", {"artifacts": "notes/readme.txt"}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello" in text and "<script>alert" not in text
    assert f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/notes/readme.txt" in text
    image_page = browser.get(f"/runs/{run_id}/", {"artifacts": "plots/roc.png"}).content.decode()
    assert (
        'id="artifact-preview"' in image_page and "artifact-image?path=plots/roc.png" in image_page
    )
    image = browser.get(f"/runs/{run_id}/artifact-image", {"path": "plots/roc.png"})
    assert image["Content-Type"] == "image/png" and image["X-Content-Type-Options"] == "nosniff"
    assert b"".join(image.streaming_content) == PNG
    svg = browser.get(f"/runs/{run_id}/artifact-image", {"path": "plots/evil.svg"})
    assert svg.status_code == 400
    svg_page = browser.get(f"/runs/{run_id}/", {"artifacts": "plots/evil.svg"}).content.decode()
    assert "No preview for this type" in svg_page and "onload" not in svg_page
    for bad in ("../../etc/passwd", "%2e%2e/x", "/abs"):
        page = browser.get(f"/runs/{run_id}/", {"artifacts": bad})
        assert page.status_code == 200 and "error-box" in page.content.decode(), bad
        refused = browser.get(f"/runs/{run_id}/artifact-image", {"path": bad + ".png"})
        assert refused.status_code in (400, 404), bad


def test_private_runs_artifacts_stay_hidden(people):
    alice = people["alice"]
    run_id = new_run(alice)
    info = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"]
    people["admin"].put(
        f"experiments/{info['experiment_id']}/permissions",
        {
            "grants": [
                {"user": "alice", "level": "MANAGE"},
                {"group": "data-scientist", "level": "NONE"},
            ]
        },
    )
    bob = Client()
    bob.force_login(people["bob"].user)
    assert bob.get(f"/runs/{run_id}/").status_code == 404
    assert bob.get(f"/runs/{run_id}/artifact-image", {"path": "a.png"}).status_code == 404


def test_links_to_artifacts_with_odd_names_are_url_encoded(people, settings, tmp_path):
    import html as html_lib
    import re
    from urllib.parse import quote

    settings.CUSTODY_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    alice = people["alice"]
    run_id = new_run(alice)
    info = alice.mlflow("runs/get", {"run_id": run_id}, "GET").json()["run"]["info"]
    prefix = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    # ("#", "?" and ";" are refused in artifact paths; "%", "&", "+" and spaces are not)
    names = ["my dir/report 1.txt", "100%25 & more.txt", "a+b=c.txt"]
    for name in names:
        put = alice.client.put(
            f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/{quote(name)}",
            name.encode(),
            content_type="text/plain",
        )
        assert put.status_code == 200, put.content
    browser = Client()
    browser.force_login(alice.user)

    def follow(href: str):
        return browser.get(html_lib.unescape(href))

    for name in names:
        folder, _, _ = name.rpartition("/")
        listing = browser.get(f"/runs/{run_id}/", {"artifacts": folder}).content.decode()
        downloads = re.findall(r'<a href="(/api/2.0/mlflow-artifacts/[^"]+)" download>', listing)
        fetched = {b"".join(follow(h).streaming_content) for h in downloads}
        assert name.encode() in fetched, (name, downloads)
        opened = re.findall(r'<a href="(\?artifacts=[^"]+)#artifacts">', listing)
        previews = [follow(f"/runs/{run_id}/{h}").content.decode() for h in opened]
        preview = next(p for p in previews if 'id="artifact-preview"' in p)
        link = re.search(r'<a href="([^"]+)" download id="artifact-download">', preview).group(1)
        previewed = re.search(r'id="artifact-preview"[^>]*>([^<]*)</pre>', preview).group(1)
        # the download is the very file the preview shows
        assert b"".join(follow(link).streaming_content) == html_lib.unescape(previewed).encode()

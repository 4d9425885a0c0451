"""report.html in headless Chromium with the network blocked: no external request, full render."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from IVUSReconstructLib.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert (
        main(
            [
                "phantom",
                "--preset",
                "coronary",
                "--length-mm",
                "4",
                "--size-px",
                "128",
                "--out",
                str(root / "ph"),
            ]
        )
        == 0
    )
    out = root / "run"
    assert (
        main(
            [
                "run",
                str(root / "ph" / "pullback.dcm"),
                "--centerline",
                str(root / "ph" / "centerline.mrk.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def _page_requests(html_path, tmp_path, name: str) -> tuple[set[str], object]:
    """Load a page in headless Chromium with every host unresolvable; return the external URLs
    the page asked for and the screenshot path. Chromium's own background requests carry no
    page origin ("not an origin") and are left out."""
    netlog = tmp_path / f"{name}.netlog.json"
    shot = tmp_path / f"{name}.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / ('profile-' + name)}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}",
        "--window-size=1200,3000",
        f"--screenshot={shot}",
        html_path.as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = set()
    for event in log["events"]:
        params = event.get("params") or {}
        url = params.get("url", "")
        if (
            names.get(event["type"]) == "URL_REQUEST_START_JOB"
            and url.startswith(("http://", "https://", "ws://", "wss://"))
            and params.get("initiator") != "not an origin"
        ):
            urls.add(url)
    return urls, shot


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)


@needs_chromium
def test_request_detector_sees_an_external_image(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="https://example.org/logo.png"></body></html>')
    urls, _ = _page_requests(page, tmp_path, "control")
    assert urls == {"https://example.org/logo.png"}


@needs_chromium
@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_report_renders_offline_without_requests(report_dir, tmp_path):
    from PIL import Image

    urls, shot = _page_requests(report_dir / "report.html", tmp_path, "report")
    assert urls == set()
    assert shot.exists(), "Chromium wrote no screenshot"
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # the page is drawn: white background with text, the render, and the plots (many colours)
    non_white = np.any(image < 235, axis=2)
    assert non_white.mean() > 0.08
    assert len({tuple(c // 32) for c in image.reshape(-1, 3)[::97]}) > 30

"""The dashboard in a real headless browser (Debian's chromium): it loads from disk with no
server and no network, runs without script errors, draws every figure and names every
method; a screenshot is kept in artifacts/ (MODECONN_ARTIFACTS overrides) for a person to look at."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from modeconn.report.dashboard import write_dashboard

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless browser: `apt-get install chromium` "
                                "(the Makefile's setup does it where apt is available)")
ARTIFACTS = Path(os.environ.get("MODECONN_ARTIFACTS", REPO / "artifacts"))


def _browser(*args: str, url: str, tmp: Path) -> subprocess.CompletedProcess:
    # --no-sandbox: CI containers run as root; a private profile keeps runs independent.
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=20000", *args, url],
                          capture_output=True, text=True, timeout=180)


def _runs(tmp: Path) -> list[dict]:
    """Three methods over two seeds with paths and barriers, an ensemble, and a plane on disk."""
    runs = []
    t = np.linspace(0, 1, 11)
    for method, align, height in (("linear", "none", 20.0), ("linear", "activation", 6.0), ("bezier", "none", 2.0)):
        for seed in (0, 1):
            bump = height * np.sin(np.pi * t) + seed
            path = {"t": t.tolist(), "test_err": (8 + bump).tolist(), "train_loss": (0.1 + bump / 20).tolist()}
            runs.append({"status": "ok", "dataset": "fashion_mnist", "arch": "mlp", "method": method, "align": align,
                         "seed": seed, "config": {}, "endpoints": [], "path": path,
                         "summary": {"barrier": {"test_err": float(bump.max()), "train_loss": float(bump.max() / 20)}}})
    plane_dir = tmp / "bezier_run"
    plane_dir.mkdir()
    x = np.linspace(-0.2, 1.2, 9)
    grid = np.add.outer((x - 0.5) ** 2, (x - 0.3) ** 2)
    np.savez(plane_dir / "plane.npz", xs=x, ys=x, test_err=10 + 40 * grid, train_loss=0.2 + 2 * grid,
             anchors_xy=np.array([[0, 0], [1, 0], [0.5, 0.6]]), curve_xy=np.c_[t, 1.2 * t * (1 - t)])
    runs[-2].update(_file=str(plane_dir / "results.json"), plane={"files": ["plane.npz"]})
    curve = [{"members": k, "test_acc": 90 + k / 2} for k in (1, 2, 3)]
    runs.append({"status": "ok", "dataset": "fashion_mnist", "arch": "mlp", "method": "fge", "align": "none",
                 "seed": 0, "config": {}, "endpoints": [],
                 "ensemble": {**curve[-1], "curve": curve, "baseline": {"members": 1, "test_acc": 89.5}}})
    return runs


def test_dashboard_loads_in_a_headless_browser_and_shows_each_method(tmp_path):
    page = write_dashboard(_runs(tmp_path), tmp_path / "dashboard.html")
    url = page.resolve().as_uri()
    dom = _browser("--dump-dom", url=url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "data-errors" not in html.split("<body", 1)[0], re.findall(r'data-errors="([^"]*)"', html)
    expected = html.count('class="plotly-graph-div')
    assert expected == 4          # path, barriers, ensembles, plane
    assert f"rendered {expected} of {expected} figures" in html       # every figure drawn by plotly.js
    legend = set(re.findall(r'class="legendtext"[^>]*>([^<]+)<', html))
    assert {"linear (2 seeds)", "linear+activation (2 seeds)", "bezier (2 seeds)", "fge"} <= legend
    bars = re.findall(r'class="xtick"[^>]*>.*?<text[^>]*>([^<]+)<', html)
    assert {"linear", "linear+activation", "bezier"} <= set(bars)   # the barrier chart names each method

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    taken = _browser(f"--screenshot={shot}", "--window-size=1280,2600", url=url, tmp=tmp_path)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000   # not a blank page

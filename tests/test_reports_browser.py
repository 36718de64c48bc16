"""Open a report in headless Chromium and check that the page renders with its figures (skipped when
Debian's ``chromium`` is not installed)."""
import shutil
import subprocess

import numpy as np
import pytest

from reports import build_report
from tests.reports_store import write_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    index = build_report(write_store(tmp_path / "results"), tmp_path / "report")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2400",
                    index.resolve().as_uri()], capture_output=True, timeout=180, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    # The profile and win-rate figures sit in the first 2400 px: with them ~50k strongly coloured pixels,
    # without them (broken images) only the ~3k of the blue links.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).sum() > 20000
    assert np.mean(pixels < 0.5) > 0.005  # text and axes drawn

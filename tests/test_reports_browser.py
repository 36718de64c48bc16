"""Open a report in headless Chromium: the page renders with its figures, and its first section is the verdict
(skipped when Debian's ``chromium`` is not installed)."""
import shutil
import subprocess

import numpy as np
import pytest

from reports import build_report
from tests.reports_store import VERDICT_RUNS, write_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VERDICT_BORDER = (0x00, 0x72, 0xB2)  # section.verdict's left border in reports.html.CSS (Okabe–Ito blue)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]


def _chromium(tmp_path, *args) -> str:
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True, text=True,
                         timeout=180, check=True)
    return out.stdout


def _screenshot(tmp_path, index, width, height):
    import matplotlib.image

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}", index.resolve().as_uri())
    return matplotlib.image.imread(shot)[..., :3]


def test_report_renders_in_headless_chromium(tmp_path):
    index = build_report(write_store(tmp_path / "results"), tmp_path / "report")
    pixels = _screenshot(tmp_path, index, 1280, 3000)
    assert pixels.shape[:2] == (3000, 1280)
    # The profile and win-rate figures sit in the first 3000 px: with them ~50k strongly coloured pixels,
    # without them (broken images) only the ~3k of the blue links.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).sum() > 20000
    assert np.mean(pixels < 0.5) > 0.005  # text and axes drawn


def test_the_first_section_is_the_verdict(tmp_path):
    index = build_report(write_store(tmp_path / "results", VERDICT_RUNS), tmp_path / "report")
    dom = _chromium(tmp_path, "--dump-dom", index.resolve().as_uri())
    body = dom.split("</nav>", 1)[1]
    assert body.lstrip().startswith('<h2 id="verdict">Verdict</h2>')
    section = body.split('<section class="verdict">', 1)[1].split("</section>", 1)[0]
    assert "Winner: fast" in section and "<table" in section and "not reached" in section
    pixels = _screenshot(tmp_path, index, 1280, 1000)  # what a reader sees first
    border = (np.abs(pixels - np.array(VERDICT_BORDER) / 255).max(axis=2) < 0.05)
    rows = np.flatnonzero(border.sum(axis=1) >= 6)  # the 8-px band, row by row
    assert len(rows) > 400 and rows[0] < 500, (len(rows), rows[:1])  # a tall box that starts on the first screen
    box = pixels[rows[0]:rows[-1], 40:1200]
    assert np.mean(box.max(axis=2) < 0.3) > 0.01  # the winner sentence and the ranking table drawn inside

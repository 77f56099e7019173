"""The explain page in a real browser: headless Chromium loads it without console errors, every embedded
image decodes, and the screenshot is not blank. Skipped (with the reason) only when no Chromium is installed;
CI installs it (.ci/run)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium/chromium-browser/google-chrome on PATH "
                                "(apt-get install -y chromium)")

# Injected at the top of a copy of the page: records uncaught errors and console.error calls, then after
# load writes what it found, and each image's decoded size, into the DOM that --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.target && e.target.src || '?')), true);
const __ce = console.error; console.error = (...a) => { window.__errors.push('console: ' + a.join(' ')); __ce(...a); };
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => i.complete + ':' + i.naturalWidth + 'x' + i.naturalHeight);
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({errors: window.__errors, images: imgs, text: document.body.innerText.length});
  document.body.appendChild(pre);
});
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]


def _chromium(args, tmp_path):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def page(toyfaces_small, tmp_path_factory):
    from fairlatent.explain import audit_classifiers, write_audit
    from fairlatent.train.classifier import ClassifierConfig, train_classifier

    tmp = tmp_path_factory.mktemp("browser")
    model = train_classifier([toyfaces_small], ["Wearing_Hat", "Eyeglasses"], tmp / "clf",
                             ClassifierConfig(width=8, epochs=1, batch_size=32, lr=3e-3), progress=False)
    result = audit_classifiers({"baseline": model, "a & <b>": model}, toyfaces_small, quantile=0.02, n_boot=20)
    return write_audit(result, tmp / "out") / "explain.html"


def test_page_loads_without_errors_and_every_image_decodes(page, tmp_path):
    import json

    html = page.read_text()
    assert "<script" not in html  # the page itself runs no code; the probe below is added to a copy
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    res = _chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path)
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    report = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert report["errors"] == []
    assert len(report["images"]) == html.count("data:image/png;base64,") >= 2
    assert all(s.startswith("true:") and not s.startswith("true:0x") for s in report["images"]), report["images"]
    assert report["text"] > 500
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", res.stderr)


def test_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    res = _chromium(["--window-size=1400,1800", f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.is_file(), res.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    non_white = (pixels < 245).any(axis=2).mean()
    assert non_white > 0.05 and pixels.std() > 20, (non_white, pixels.std())
    outline = ((pixels[..., 0] > 200) & (pixels[..., 1] > 170) & (pixels[..., 2] < 90)).sum()
    assert outline > 200, outline  # the units' masks, outlined in yellow on the embedded images, are drawn

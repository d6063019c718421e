"""The report in a real browser: Debian's headless Chromium opens it offline, every section and
figure is there and drawn, no error reaches the console, it fits a phone, and a screenshot is kept
(``test-artifacts/report.png`` and ``report-phone.png``, gitignored).

``make test`` installs Chromium with apt-get when it is missing; where that is impossible (no
root, no network) these tests skip with that reason instead of failing.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_report import ORDER

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's headless Chromium is not installed (make test "
                                "runs `apt-get install -y chromium`; it needs root and the Debian mirror)")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = (390, 844)

# Records every error (script errors, failed resource loads, console.error) from the first byte,
# then, once the page has loaded, writes what it found into a <pre id="probe"> for --dump-dom.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || 'error')), true);
const _ce = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('figure svg[role=img]')];
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({
    sections: [...document.querySelectorAll('main > section')].map(s => s.id),
    headings: [...document.querySelectorAll('main > section > h2')].map(h => h.textContent.length > 0),
    figures: figs.length,
    titled: figs.filter(s => (s.querySelector('title') || {}).textContent).length,
    drawn: figs.filter(s => s.getBoundingClientRect().width > 100 && s.getBoundingClientRect().height > 30).length,
    captions: document.querySelectorAll('table > caption').length,
    page_width: document.documentElement.scrollWidth,
    viewport_width: window.innerWidth,
    errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args: str, tmp: Path, width: int, height: int) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _probe(page: Path, tmp: Path, width: int) -> dict:
    text = page.read_text(encoding="utf-8")
    probed = tmp / f"probed-{width}.html"
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    res = _chromium("--virtual-time-budget=5000", "--dump-dom", probed.as_uri(), tmp=tmp, width=width, height=900)
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, flags=re.S)
    assert found, f"the probe did not run; chromium exit {res.returncode}: {res.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_report_in_headless_chromium(article_run, tmp_path):
    _, paths = article_run
    n_svg = paths.html.read_text(encoding="utf-8").count("<svg")
    desktop = _probe(paths.html, tmp_path, 1100)
    assert desktop["errors"] == []
    assert desktop["sections"] == ORDER and all(desktop["headings"])
    assert desktop["figures"] == desktop["titled"] == desktop["drawn"] == n_svg >= 8
    assert desktop["captions"] >= 10
    phone = _probe(paths.html, tmp_path, PHONE[0])
    assert phone["errors"] == [] and phone["drawn"] == n_svg
    # headless Chromium may widen a very narrow window (to 500 px); the page must fit whatever it got
    assert phone["viewport_width"] <= 500 and phone["page_width"] <= phone["viewport_width"], phone


def test_screenshots_and_a_clean_console(article_run, tmp_path):
    _, paths = article_run
    ARTIFACTS.mkdir(exist_ok=True)
    for name, (w, h) in {"report.png": (1100, 3200), "report-phone.png": (PHONE[0], 3200)}.items():
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        res = _chromium(f"--screenshot={shot}", paths.html.as_uri(), tmp=tmp_path, width=w, height=h)
        assert shot.exists() and shot.stat().st_size > 20_000, res.stderr[-2000:]
        console = [line for line in res.stderr.splitlines() if ":CONSOLE(" in line]
        assert console == [], console


MEASURE = """() => {
  const figs = [...document.querySelectorAll('figure svg[role=img]')];
  const smallest = figs.map(s => {
    const scale = s.getBoundingClientRect().width / s.viewBox.baseVal.width;
    return Math.min(...[...s.querySelectorAll('text')].map(t => parseFloat(getComputedStyle(t).fontSize) * scale));
  });
  const nav = [...document.querySelectorAll('nav li')].map(li => li.getBoundingClientRect())
                .map(r => [r.left, r.top, r.right, r.bottom]);
  return {smallest, page: document.documentElement.scrollWidth, viewport: window.innerWidth, nav,
          text: document.body.innerText};
}"""


def _overlaps(boxes: list[list[float]]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if not (boxes[i][2] <= boxes[j][0] or boxes[j][2] <= boxes[i][0]
                    or boxes[i][3] <= boxes[j][1] or boxes[j][3] <= boxes[i][1])]


@pytest.mark.parametrize("width", [1280, 390])
def test_report_layout_and_legibility_in_chromium(article_run, width):
    """main: the contents list overlapped at 1280 px, the FAERS table overflowed, figures shrank on a 390 px
    phone until their labels were ~4 px, and code names (female = 0, cumulative_mg_per_kg) reached the page."""
    playwright = pytest.importorskip("playwright.sync_api")
    from ketaweight.study.labels import LABELS

    _, paths = article_run
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                                                     "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(paths.html.resolve().as_uri())
            m = page.evaluate(MEASURE)
            page.screenshot(path=str(ARTIFACTS / f"report-{width}px.png"), full_page=True)
        finally:
            browser.close()
    assert m["viewport"] == width and m["page"] <= width, m["page"]  # no horizontal overflow of the page
    assert _overlaps(m["nav"]) == []
    assert len(m["smallest"]) >= 8
    if width == 390:
        assert min(m["smallest"]) >= 10, m["smallest"]  # every figure's smallest text, in CSS px on the phone
    leaked = sorted({name for name in LABELS if "_" in name and re.search(rf"\b{re.escape(name)}\b", m["text"])})
    assert leaked == [], leaked
    assert not re.search(r"\b(female|first_route|bmi_class) = ", m["text"])

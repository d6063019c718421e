"""The clinic service in a real browser, as people use it: Playwright for Python drives Debian's
headless Chromium against ``ketaweight serve`` on loopback (with its real job runner).

An admin made by ``ketaweight create-admin`` adds a clinician; the clinician signs in, uploads a
simulated clinic, reads the validation report, runs the weight study and watches its progress,
reads the answer page and adds a comment, opens a patient with a rapid-loss alert and
acknowledges it.  axe-core (from npm, injected by Playwright) checks every page for serious or
critical accessibility violations; screenshots go to ``test-artifacts/app-*.png``; the server's
log never shows a password.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ketaweight.pipelines.simulation import run_simulation

from .conftest import south_folder

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PASSWORD = "a long admin passphrase 7"
CLINICIAN_PASSWORD = "a long clinician passphrase 8"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's Chromium is not installed (make test installs it)"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make test runs npm install axe-core)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clinic_zip(tmp: Path) -> Path:
    """A simulated clinic of 600 patients plus three hand-built patients, one (S-LOSS) with an 8% loss in 3 weeks."""
    _, _ = run_simulation("article", 600, 21, tmp / "sim", "csv", False)
    extra = south_folder(tmp / "extra")
    folder = tmp / "clinic"
    folder.mkdir()
    for name in ("patients", "exposures", "measurements", "lifestyle", "adverse_events"):
        frames = [pd.read_csv(tmp / "sim" / "csv" / f"{name}.csv", dtype=str)]
        if (extra / f"{name}.csv").exists():
            frames.append(pd.read_csv(extra / f"{name}.csv", dtype=str))
        pd.concat(frames).to_csv(folder / f"{name}.csv", index=False)
    target = tmp / "north-clinic.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"north-clinic/{p.name}")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    data = tmp / "data"
    cli = [str(Path(sys.executable).with_name("ketaweight"))]
    made = subprocess.run([*cli, "create-admin", "--data", str(data), "--username", "chief", "--clinic", "North clinic",
                           "--password-stdin"], input=PASSWORD + "\n", text=True, capture_output=True, timeout=600)  # Argon2 at load 30: > 120 s
    assert made.returncode == 0, made.stderr
    port = _free_port()
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([*cli, "serve", "--data", str(data), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "120"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError((tmp / "server.log").read_text())
    yield {"base": base, "zip": _clinic_zip(tmp), "log": tmp / "server.log"}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


class Checked:
    """A page wrapper that runs axe-core after every navigation and keeps a screenshot."""

    def __init__(self, page, axe: str) -> None:
        self.page, self.axe, self.checked = page, axe, []

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        self.page.add_script_tag(content=self.axe)
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name} ({self.page.url}): accessibility violations {bad}"
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"), full_page=True)
        self.checked.append(name)


def test_a_clinic_day_in_the_browser(server):
    sync_playwright = playwright_api.sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        c = Checked(page, AXE.read_text(encoding="utf-8"))
        base = server["base"]

        # the admin signs in and adds a clinician
        page.goto(base + "/")
        assert page.url.endswith("/login")
        c.check("login")
        page.get_by_label("User name").fill("chief")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Welcome, chief").wait_for()
        c.check("home-admin")
        page.get_by_role("link", name="Accounts").click()
        c.check("accounts")
        page.get_by_label("User name").fill("dr-north")
        page.get_by_label("Password (at least 12 characters)").fill(CLINICIAN_PASSWORD)
        page.get_by_label("Role").select_option("clinician")
        page.get_by_label("Clinic (clinicians)").select_option(label="North clinic")
        page.get_by_role("button", name="Add account").click()
        page.get_by_text("Account added.").wait_for()
        page.get_by_role("button", name="Sign out").click()

        # the clinician signs in and uploads the clinic's data
        page.get_by_label("User name").fill("dr-north")
        page.get_by_label("Password").fill(CLINICIAN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Upload data").click()
        c.check("upload")
        page.get_by_label("Archive (.zip").set_input_files(str(server["zip"]))
        page.get_by_role("button", name="Upload and validate").click()
        page.get_by_text("Loaded: every row passed validation").wait_for(timeout=120_000)
        assert "603 new patient(s)" in page.content()
        c.check("validation-report")

        # the weight study runs as a job with live progress
        page.get_by_role("link", name="Jobs").click()
        c.check("jobs")
        page.get_by_role("button", name="Start").click()
        page.get_by_role("progressbar").wait_for()
        c.check("job-progress")
        page.get_by_role("link", name="read the answer page").wait_for(timeout=180_000)
        page.get_by_role("link", name="read the answer page").click()

        # the answer page, in the article's structure, with a comment
        page.get_by_role("navigation", name="Contents").wait_for()
        for title in ("Does ketamine cause weight loss?", "Frequently asked questions", "Disclaimer"):
            assert page.get_by_role("link", name=title).count() >= 1
        c.check("answer")
        page.get_by_label("Add Comment").nth(0).fill("Matches what we see in clinic: small losses.")
        page.get_by_role("button", name="Add Comment").nth(0).click()
        page.get_by_text("Matches what we see in clinic: small losses.").wait_for()
        assert "dr-north" in page.content()

        # a patient with a rapid-loss alert, acknowledged
        page.goto(base + "/patients?alerts=open")
        c.check("patients")
        page.get_by_role("link", name="S-LOSS").click()
        page.get_by_role("heading", name="Rapid weight loss (> 5% in 30 days)").first.wait_for()
        assert page.locator("svg.chart").count() >= 2
        c.check("patient")
        page.get_by_label("Comment (what was done)").first.fill("Called her; dietitian referral booked.")
        page.get_by_role("button", name="Acknowledge").first.click()
        page.get_by_text("Alert acknowledged.").wait_for()
        assert "Acknowledged by dr-north" in page.content()
        c.check("patient-acknowledged")

        # on a phone
        phone = browser.new_context(bypass_csp=True, viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
        p2 = phone.new_page()
        p2.goto(base + "/patients/S-LOSS")
        width = p2.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the patient page is {width}px wide on a 390px phone"
        Checked(p2, c.axe).check("patient-phone")
        p2.goto(base + "/monitoring")
        Checked(p2, c.axe).check("monitoring-phone")
        browser.close()
    assert not errors, errors
    log = server["log"].read_text()
    assert PASSWORD not in log and CLINICIAN_PASSWORD not in log and "POST /login" in log

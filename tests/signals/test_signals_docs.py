"""The README's signals section stays runnable, and every signals CLI option is documented there
or in docs/signals.md."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from ketaweight.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _signals_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("<!-- section:signals -->"): text.index("<!-- /section:signals -->")]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", _signals_section(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md (signals)", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["report"].reports == namespace["truth"]["expected_reports_after_dedup"]
    assert list(namespace["result"].rows["drug"][:2]) == ["ketamine", "esketamine"]


def test_every_scan_option_is_documented():
    cmd = get_command(app).commands["signals"].commands["scan"]
    docs = _signals_section() + (ROOT / "docs" / "signals.md").read_text(encoding="utf-8")
    missing = [p.opts[0] for p in cmd.params if p.param_type_name == "option" and p.opts[0] not in docs
               and p.opts[0] not in ("--help",)]
    assert not missing, f"undocumented scan options: {missing}"

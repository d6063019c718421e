"""Every example in the README and in the package's docstrings runs (issue "One house").

README: the ```python blocks run in order, in one namespace-free sequence of fresh namespaces, in a
temporary working folder (earlier blocks create the files later ones read, as a reader would).
Docstrings: every ``>>>`` example in every module of the package runs as a doctest.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ketaweight

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    assert len(BLOCKS) >= 5
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(BLOCKS):
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), {"__name__": f"readme_{i}"})
        except Exception as exc:  # name the block so a broken example is easy to find
            raise AssertionError(f"README python block {i + 1} failed: {exc!r}\n{block}") from exc


MODULES = sorted(m.name for m in pkgutil.walk_packages(ketaweight.__path__, "ketaweight.")
                 if not m.name.endswith("__main__") and ".migrations" not in m.name)  # scripts, not modules


@pytest.mark.parametrize("name", ["ketaweight", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0


def test_the_package_has_doctests():
    total = 0
    for name in ["ketaweight", *MODULES]:
        finder = doctest.DocTestFinder()
        total += sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert total >= 20  # examples in the facade, the simulator, the causal engine, privacy, evidence …

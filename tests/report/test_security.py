"""Nothing injected (issue "Nothing lost, nothing hidden, nothing injected"): data-derived text is escaped
in the page, labels are never parsed as formulas, output names stay inside --out."""

from __future__ import annotations

import json
import shutil

import pytest

from ketaweight.core import figures
from ketaweight.core.errors import InputError
from ketaweight.report.render import write_report
from ketaweight.study.spec import load_study

ATTACK = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_html_in_data_derived_strings_comes_out_escaped(article_run, tmp_path):
    """main (D23, X1): the template rendered without autoescaping; a study description or an event term
    holding HTML was written raw into report.html."""
    results, _ = article_run
    run = tmp_path / "results"
    shutil.copytree(results, run)
    def is_weight(path):
        doc = json.loads(path.read_text())
        return doc["kind"] == "causal" and doc["results"]["study"]["outcome"]["kind"] == "weight"

    weight = next(p for p in run.glob("*.json") if is_weight(p))
    doc = json.loads(weight.read_text())
    doc["results"]["study"]["study"]["description"] = ATTACK
    weight.write_text(json.dumps(doc))
    signals = next(p for p in run.glob("signals-*.json"))
    sdoc = json.loads(signals.read_text())
    sdoc["results"]["pairs"][0]["event"] = ATTACK
    signals.write_text(json.dumps(sdoc))
    page = write_report(run, tmp_path / "report.html").html.read_text(encoding="utf-8")
    assert "<script>alert(2)" not in page and '<img src=x onerror="alert(1)">' not in page
    assert "&lt;script&gt;alert(2)" in page


def test_labels_with_dollar_signs_are_text_not_formulas():
    """main (D28): '$…$' in a label was rendered as a formula; an invalid one stopped `report`."""
    fig = figures.forest_plot(["price $5 vs $10", "broken $\\frac{"], [1.0, 2.0], [0.5, 1.5], [1.5, 2.5],
                              unit="kg", alt="test")
    svg = fig.svg
    fig.close()
    assert "$5 vs $10" in svg and "broken $\\frac{" in svg


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs", "sub/dir", "a\x00b", "x" * 65])
def test_a_study_name_is_a_plain_file_name(tmp_path, name):
    """main (D15): the study name was used as a file name: traversal, absolute paths, sub-folders, NUL."""
    from importlib import resources

    text = (resources.files("ketaweight.study.studies") / "ketamine-weight.toml").read_text(encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text(text.replace('name = "ketamine-weight"', f"name = {json.dumps(name)}"), encoding="utf-8")
    with pytest.raises(InputError, match="study.name"):
        load_study(path)

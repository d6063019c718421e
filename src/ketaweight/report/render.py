"""Assemble the report from a results folder and write it as HTML, Markdown and JSON.

``write_report("demo-output/results", "demo-output/report.html")`` writes ``report.html``
(one self-contained page: inline CSS and SVG, no script, no external resource),
``report.md`` and ``report.json`` beside it, atomically.  The JSON holds the same content
as the page, with each figure as its alt text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ketaweight.core.version import __version__
from ketaweight.evidence.grade import GradingRules, grade_evidence
from ketaweight.report import sections as sx
from ketaweight.report.blocks import data_label
from ketaweight.report.collect import RunResults, collect
from ketaweight.report.faq import disclaimer_section, faq_section
from ketaweight.report.mechanisms_sections import dose_section, mechanisms_section
from ketaweight.report.network_section import network_document, network_section
from ketaweight.report.figures import Figure
from ketaweight.report.safety import responsible_section
from ketaweight.report.signals_section import signals_section
from ketaweight.core.results import write_json_atomic, write_text_atomic

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("ketaweight.report", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class ReportPaths:
    """Where the three forms of the report were written."""

    html: Path
    markdown: Path
    json: Path
    sentence: str
    grade: str


def build_report(run: RunResults, rules: GradingRules | None = None) -> dict[str, Any]:
    """The report's content: title, the graded answer, and the sections in the article's order."""
    rules = rules or GradingRules()
    network = network_document(run)  # network hook (issue 15): a network synthesis in the run folder
    answer = grade_evidence(run.weight, signals=run.signals, mechanisms=run.mechanisms, rules=rules, network=network)
    sections = [
        sx.answer_section(run, answer, rules),
        sx.mechanism_section(run),
        sx.therapeutic_section(run),
        sx.link_section(run),
        *([network_section(run, network)] if network else []),  # network hook (issue 15)
        mechanisms_section(run),
        dose_section(run),
        sx.limitations_section(run),
        signals_section(run),
        responsible_section(run),
        faq_section(run, answer, rules),
        disclaimer_section(),
    ]
    return {"title": "Does ketamine cause weight loss? An answer from data", "version": __version__,
            "data_label": data_label(run.weight), "answer": answer.to_dict(), "sections": sections}


def _for_json(report: dict[str, Any]) -> dict[str, Any]:
    def strip(v: Any) -> Any:
        if isinstance(v, Figure):
            return {"figure": v.alt}
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(report)


def write_report(results_dir: str | Path, out_html: str | Path, rules: GradingRules | None = None) -> ReportPaths:
    """Read the run in ``results_dir`` and write ``out_html`` plus ``.md`` and ``.json`` beside it."""
    run = collect(results_dir)
    report = build_report(run, rules)
    html_path = Path(out_html)
    md_path, json_path = html_path.with_suffix(".md"), html_path.with_suffix(".json")
    write_text_atomic(html_path, _ENV.get_template("report.html.j2").render(r=report))
    write_text_atomic(md_path, _ENV.get_template("report.md.j2").render(r=report))
    write_json_atomic(json_path, _for_json(report))
    return ReportPaths(html_path, md_path, json_path, report["answer"]["sentence"], report["answer"]["grade"])

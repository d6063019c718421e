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
from ketaweight.report.network_section import network_section
from ketaweight.core.figures import Figure
from ketaweight.report.safety import responsible_section
from ketaweight.report.signals_section import signals_section
from ketaweight.study.labels import relabel
from ketaweight.core.outputs import check_file_target
from ketaweight.core.results import write_json_atomic, write_text_atomic

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("ketaweight.report", "templates"),
                          # every data-derived string (event terms, study descriptions …) is escaped in the page;
                          # the Markdown is text for people and other tools, escaped by its own filter where it matters
                          autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


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
    answer = grade_evidence(run.weight, signals=run.signals, mechanisms=run.mechanisms, rules=rules,
                            network=run.network)  # network hook (issue 15): a network synthesis in the run folder
    sections = [
        sx.answer_section(run, answer, rules),
        sx.mechanism_section(run),
        sx.therapeutic_section(run),
        sx.link_section(run),
        *([network_section(run, run.network)] if run.network else []),  # network hook (issue 15)
        mechanisms_section(run),
        dose_section(run),
        sx.limitations_section(run, answer),
        signals_section(run),
        responsible_section(run),
        faq_section(run, answer, rules),
        disclaimer_section(),
    ]
    sections = [_readable(s) for s in sections]
    return {"generator": f"ketaweight {__version__}", "title": "Does ketamine cause weight loss? An answer from data",
            "version": __version__,
            "data_label": data_label(run.weight), "answer": answer.to_dict(), "sections": sections}


def _readable(value: Any) -> Any:
    """Every text of a section with the engines' code names replaced by the labels table's labels."""
    if isinstance(value, str):
        return relabel(value)
    if isinstance(value, dict):
        return {k: (v if k == "id" else _readable(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value  # figures: their labels were made from the labels table


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


def figures_of(report: dict[str, Any]) -> list[tuple[str, Figure]]:
    """Every figure of the report with a file stem: ``<section id>-<n>``."""
    return [(f"{s['id']}-{i}", f) for s in report["sections"] for i, f in enumerate(s.get("figures", []), 1)]


def write_figures(report: dict[str, Any], folder: Path) -> list[Path]:
    """Each figure as ``<section>-<n>.svg`` and ``.png`` in ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures_of(report):
        for suffix in (".svg", ".png"):
            written.append(fig.save(folder / f"{stem}{suffix}"))
    return written


def write_report(results_dir: str | Path, out_html: str | Path, rules: GradingRules | None = None, *,
                 replace: bool = True, figures_dir: str | Path | None = None) -> ReportPaths:
    """Read the run in ``results_dir`` and write ``out_html`` plus ``.md`` and ``.json`` beside it
    (earlier report files are replaced only with ``replace``; other files, never); with
    ``figures_dir``, also every figure as SVG and PNG there."""
    html_path = Path(out_html)
    if html_path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{html_path}: the report page needs a name ending in .html (report.md and report.json "
                         "are written beside it)")
    md_path, json_path = html_path.with_suffix(".md"), html_path.with_suffix(".json")
    for path in (html_path, md_path, json_path):
        check_file_target(path, replace=replace)
    run = collect(results_dir)
    report = build_report(run, rules)
    write_text_atomic(html_path, _ENV.get_template("report.html.j2").render(r=report))
    write_text_atomic(md_path, _ENV.get_template("report.md.j2").render(r=report))
    write_json_atomic(json_path, _for_json(report))
    if figures_dir is not None:
        write_figures(report, Path(figures_dir))
    for _, fig in figures_of(report):
        fig.close()
    return ReportPaths(html_path, md_path, json_path, report["answer"]["sentence"], report["answer"]["grade"])

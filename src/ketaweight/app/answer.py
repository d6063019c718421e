"""The answer page's material, read from what :func:`ketaweight.report.render.write_report` wrote.

The report is the authority on content: the service does not rebuild it.  It shows the report's
own sections (split from ``report.html`` at its ``<section id=…>`` elements, with the report's
stylesheet), so comments, "related" links and "latest" can sit beside each one; and it compares
runs through ``report.json`` (the answer, and every table cell by section, caption and row), so
nothing here depends on the results files' internals.  If a report cannot be split (its layout
changed), the page says so and links the whole report instead.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from markupsafe import Markup


@dataclass(frozen=True)
class ReportSection:
    id: str
    title: str
    html: Markup  # the report's own, autoescaped HTML for this section


class _Splitter(HTMLParser):
    """Finds the byte spans of top-level ``<section id>`` elements inside ``<main>`` and the ``<style>`` text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.depth, self.in_main, self.spans, self.style = 0, False, [], ""
        self._start: tuple[str, int] | None = None
        self._in_style = False
        self._title, self._in_h2 = "", False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self.in_main = True
        elif tag == "style":
            self._in_style = True
        elif tag == "section" and self.in_main:
            if self.depth == 0:
                self._start = (dict(attrs).get("id") or "", self._offset())
                self._title = ""
            self.depth += 1
        elif tag == "h2" and self.depth == 1:
            self._in_h2 = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag == "h2":
            self._in_h2 = False
        elif tag == "main":
            self.in_main = False
        elif tag == "section" and self.depth:
            self.depth -= 1
            if self.depth == 0 and self._start is not None:
                end = self._offset() + len("</section>")
                self.spans.append((self._start[0], self._title.strip(), self._start[1], end))
                self._start = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        elif self._in_h2:
            self._title += data

    def handle_entityref(self, name: str) -> None:
        if self._in_h2:
            self._title += {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}.get(name, "")

    def handle_charref(self, name: str) -> None:
        if self._in_h2:
            self._title += chr(int(name[1:], 16) if name.startswith("x") else int(name))

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def feed_text(self, text: str) -> None:
        self._line_starts = [0]
        for m in re.finditer("\n", text):
            self._line_starts.append(m.end())
        self.feed(text)
        self.close()


def report_sections(report_html: Path) -> tuple[list[ReportSection], Markup]:
    """The report's sections (id, title, HTML) in order, and its stylesheet; ([], "") if none were found."""
    return _sections(report_html, report_html.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sections(report_html: Path, _mtime_ns: int) -> tuple[list[ReportSection], Markup]:
    """Cached per file version: a run's report is written once, and splitting it costs ~20 ms."""
    text = report_html.read_text(encoding="utf-8")
    splitter = _Splitter()
    splitter.feed_text(text)
    sections = [ReportSection(sid, title, Markup(text[a:b])) for sid, title, a, b in splitter.spans if sid]
    return sections, Markup(splitter.style)  # the report's own stylesheet (trusted: written by report/)


def read_report(report_json: Path) -> dict[str, Any]:
    return _report(report_json, report_json.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _report(report_json: Path, _mtime_ns: int) -> dict[str, Any]:
    return json.loads(report_json.read_text(encoding="utf-8"))


def _caption_key(caption: str) -> tuple[str, str]:
    """A table caption without the data label that follows its em dash, and that label."""
    head, _, label = caption.partition(" — ")
    return head.strip(), label.strip()


def report_tables(report: dict[str, Any]) -> dict[tuple[str, str], dict[tuple[str, str], str]]:
    """Every table of a report.json: (section id, caption without its data label) → {(row label, column): text}."""
    tables: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for section in report.get("sections", []):
        for table in section.get("tables", []) or []:
            key = (str(section.get("id", "")), _caption_key(str(table.get("caption", "")))[0])
            columns = [str(c) for c in table.get("columns", [])]
            cells = tables.setdefault(key, {})
            for row in table.get("rows", []) or []:
                if row:
                    for column, value in zip(columns[1:], row[1:]):
                        cells[(str(row[0]), column)] = str(value)
    return tables


@dataclass(frozen=True)
class Change:
    section: str
    what: str
    before: str
    after: str


def compare_reports(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """What changed from one run's report to another's: the answer, the data, and every table cell."""
    changes = []
    a, b = before.get("answer", {}), after.get("answer", {})
    for key, label in (("grade", "certainty"), ("sentence", "the answer")):
        if a.get(key) != b.get(key):
            changes.append(Change("answer", label, str(a.get(key, "—")), str(b.get(key, "—"))))
    if before.get("data_label") != after.get("data_label"):
        changes.append(Change("answer", "data", str(before.get("data_label", "—")), str(after.get("data_label", "—"))))
    labels_a = {_caption_key(str(t.get("caption", ""))) for s in before.get("sections", []) for t in s.get("tables", []) or []}
    labels_b = {_caption_key(str(t.get("caption", ""))) for s in after.get("sections", []) for t in s.get("tables", []) or []}
    for head, label in sorted(labels_b - labels_a):
        old = next((lab for h, lab in labels_a if h == head), None)
        if old is not None and label:
            changes.append(Change("data", head, old, label))  # e.g. a new FAERS quarter
    ta, tb = report_tables(before), report_tables(after)
    for key in sorted(set(ta) | set(tb)):
        section, caption = key
        if key not in ta or key not in tb:
            changes.append(Change(section, caption, "(no such table)" if key not in ta else "the table",
                                  "the table" if key not in ta else "(no such table)"))
            continue
        ca, cb = ta[key], tb[key]
        for row in sorted({r for r, _ in ca} ^ {r for r, _ in cb}):
            changes.append(Change(section, f"{caption}: {row}", "(no such row)" if row not in {r for r, _ in ca} else "the row",
                                  "the row" if row not in {r for r, _ in ca} else "(no such row)"))
        for cell in sorted(set(ca) & set(cb)):
            if ca[cell] != cb[cell]:
                changes.append(Change(section, f"{caption}: {cell[0]} — {cell[1]}", ca[cell], cb[cell]))
    return changes


def section_titles(report: dict[str, Any]) -> dict[str, str]:
    return {s.get("id", ""): s.get("title", "") for s in report.get("sections", [])}


RELATED: dict[str, tuple[str, ...]] = {
    "answer": ("causal",), "the-link": ("causal",), "limitations": ("causal",), "therapeutic-context": ("causal",),
    "three-mechanisms": ("mechanisms",), "dose-and-variability": ("mechanisms",), "signals": ("signals",),
    "responsible-use": ("responsible_use",), "faq": ("causal", "signals", "mechanisms"),
}
"""Which results files stand behind each report section, by their ``kind``."""


def results_files(results: Path) -> list[tuple[str, str]]:
    """(file name, kind) of every results file of a run (the envelope's ``kind``), sorted by name."""
    out = []
    for p in sorted(results.glob("*.json")):
        try:
            kind = json.loads(p.read_text(encoding="utf-8")).get("kind", "")
        except (ValueError, UnicodeDecodeError):
            continue
        out.append((p.name, str(kind)))
    return out

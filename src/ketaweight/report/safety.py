"""The report's responsible-use section: the cohort-level monitoring views that
:func:`ketaweight.pipelines.responsible_use.responsible_use` wrote (``kind = "responsible_use"``)."""

from __future__ import annotations

from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.report.blocks import NOT_ANALYSED, data_label, table
from ketaweight.report.collect import RunResults


def responsible_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "responsible-use", "title": "Responsible use: adverse events and monitoring flags",
           "paragraphs": ["Ketamine is a controlled substance with a potential for misuse; these are the views a "
                          "service would monitor."], "tables": [], "figures": []}
    doc = run.responsible_use
    if doc is None:
        sec["paragraphs"].append(NOT_ANALYSED)
        return sec
    label, r = data_label(doc), doc.results
    sec["tables"].append(table(f"Sessions by drug and route — {label}", ["drug (route)", "sessions", "patients"],
                                [[x.group, mask_count(x.sessions), mask_count(x.patients)] for x in r.routes]))
    sec["tables"].append(table(f"Adverse events on session days — {label}",
                                ["drug (route)", "event", "events", "per 100 sessions"],
                                [[x.group, x.term, mask_count(x.events),
                                  "—" if x.per_100_sessions is None else f"{x.per_100_sessions:.1f}"]
                                 for x in r.adverse_events]))
    sec["tables"].append(table(f"Monitoring flags — {label}", ["flag", "count", "of", "%"],
                                [[f"{x.flag} ({x.unit})", mask_count(x.count),
                                  "—" if x.of is None else mask_count(x.of),
                                  "—" if x.percent is None else f"{x.percent:.1f}"] for x in r.flags]))
    sec["paragraphs"].append(r.note)
    return sec

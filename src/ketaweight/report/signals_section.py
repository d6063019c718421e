"""Report section 8: signals from spontaneous reports, one table and PRR forest plot per scan,
ketamine's own reports first, with the control verdicts; masked cells hide their ratios.
"""

from __future__ import annotations

from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.core.results import ResultsFile
from ketaweight.evidence.grade import fmt_num
from ketaweight.core import figures as fg
from ketaweight.report.blocks import NOT_ANALYSED, data_label, table
from ketaweight.report.collect import RunResults
from ketaweight.signals.report import Measure, SignalsReport


def _about_ketamine(doc: ResultsFile) -> bool:
    return any(p.drug in ("ketamine", "esketamine") for p in doc.results.pairs)


def signals_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "signals", "title": "Signals from spontaneous reports (FAERS)", "tables": [], "figures": [],
           "paragraphs": ["Disproportionality compares how often an event is reported with a drug against all other "
                          "drugs: a signal is a question, not a cause (notoriety, stimulated reporting, and depression "
                          "itself changes appetite and weight)."]}
    if not run.signals:
        sec["paragraphs"].append(NOT_ANALYSED)
    for doc in sorted(run.signals, key=lambda d: not _about_ketamine(d)):  # ketamine's own reports first
        label = data_label(doc)
        r: SignalsReport = doc.results
        rows, lab, est, lo, hi = [], [], [], [], []
        for pair in r.pairs:
            m = {x.method: x for x in pair.measures}
            role = pair.role if pair.role != "control" else f"control ({pair.expected_result})"
            small = pair.suppressed or isinstance(pair.a, str)  # a cell of 1–10: E and ratios withheld (they give it back)
            ratios = ["suppressed (<11 reports)"] * 4 if small else [_ratio(m[k]) for k in ("PRR", "ROR", "IC", "EBGM")]
            rows.append([role, pair.drug, pair.event, mask_count(pair.a),
                         "suppressed" if small else f"{pair.expected_count:.1f}", *ratios,
                         ", ".join(pair.signals) or "none"])
            prr = m["PRR"]
            if not small and all(v == v and v for v in (prr.estimate, prr.ci_low, prr.ci_high)):  # finite, nonzero
                lab.append(f"{pair.drug} × {pair.event}")
                est.append(prr.estimate)
                lo.append(prr.ci_low)
                hi.append(prr.ci_high)
        sec["tables"].append(table(f"Disproportionality, counts as the source counts them — {label}",
                                    ["role", "drug", "event", "reports (a)", "expected (E)", "PRR (95% CI)",
                                     "ROR (95% CI)", "IC (95% CI)", "EBGM (EB05–EB95)", "signals"], rows))
        if lab:
            sec["figures"].append(fg.forest_plot(lab, est, lo, hi, unit="PRR (log scale)", log=True, reference=1.0,
                                                 alt=f"Forest plot of proportional reporting ratios with 95% CIs "
                                                     f"({label})"))
        for c in r.controls:
            found = [k for k, v in c.signal.items() if v]
            ok = all(c.as_expected.values())
            sec["paragraphs"].append(
                f"Control {c.drug} × {c.event} (expected {c.expected}; {label}): "
                + (f"signal by {', '.join(found)}" if found else "no signal by any method")
                + (", as expected." if ok else " — not as expected: read this table's signals with that in mind."))
        sec["paragraphs"].extend(f"{label}: {n}" for n in r.notes)
    return sec


def _ratio(m: Measure) -> str:
    """'est (low–high)'; EBGM from a prior fit that did not converge is marked, as the signals CLI does."""
    if m.estimate != m.estimate:  # NaN: undefined ratio (a zero cell)
        return "undefined"
    flag = " (!) prior fit not converged" if m.prior_converged is False or m.prior_boundary else ""
    return f"{fmt_num(m.estimate)} ({fmt_num(m.ci_low)} to {fmt_num(m.ci_high)}){flag}"

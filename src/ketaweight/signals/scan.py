"""A disproportionality scan: requested drug–event pairs plus controls, four methods side by side.

``scan(table, drugs=["ketamine", "esketamine"], events=["weight-loss"])`` fits the MGPS prior
on every single-term cell of ``table`` (n ≥ 1), then for each requested pair and each control
reports PRR (95% CI, Yates χ², Evans criteria), ROR (95% CI), IC (95% exact interval) and
EBGM (EB05–EB95), each with the usual signal threshold.  The result serialises to the common
JSON envelope and renders as a terminal table; counts 1–10 are shown as "<11".

Signal thresholds (stated in every result): PRR ≥ 2 and χ² ≥ 4 and a ≥ 3 (Evans 2001);
ROR 95% lower limit > 1; IC 95% lower limit > 0; EB05 ≥ 2 (Szarfman 2002).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ketaweight.signals.report import ControlVerdict, Measure, PairSignal, SignalsReport
from ketaweight.core.errors import ConvergenceWarning, InputError, Location
from ketaweight.core.privacy import mask_count, masked_or_exact
from ketaweight.signals import disproportionality as dp
from ketaweight.signals import mgps
from ketaweight.signals.mapping import Control, TermGroup, clean_name, clean_term
from ketaweight.signals.tables import CountTable

__all__ = ["ScanResult", "scan", "THRESHOLDS"]

THRESHOLDS = {
    "PRR": "PRR ≥ 2, Yates χ² ≥ 4 and a ≥ 3 (Evans, Waller & Davis 2001)",
    "ROR": "lower CI limit > 1 (at 95%: van Puijenbroek et al. 2002)",
    "IC": "lower CI limit > 0 (at 95%: IC025 > 0, Norén et al. 2013)",
    "EBGM": "EB05 ≥ 2 (Szarfman, Machado & O'Neill 2002)",
}


@dataclass(frozen=True)
class ScanResult:
    """Rows (one per pair, requested and controls) and the fitted prior, with provenance."""

    rows: pd.DataFrame
    prior_fit: mgps.PriorFit | None
    prior_source: str
    table_summary: dict[str, Any]
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def controls(self) -> pd.DataFrame:
        return self.rows[self.rows["role"] == "control"]

    def control_verdicts(self) -> list[ControlVerdict]:
        """Did each control behave as expected under each method?"""
        out = []
        for _, r in self.controls.iterrows():
            flags = {m: bool(r[f"{m.lower()}_signal"]) for m in ("PRR", "ROR", "IC", "EBGM")}
            want = r["expected"] == "positive"
            out.append(ControlVerdict(r["drug"], r["event"], r["expected"], flags, {m: f == want for m, f in flags.items()}))
        return out

    def report(self, *, exact_counts: bool = False) -> SignalsReport:
        """The scan as a results-file payload; counts 1–10 masked unless ``exact_counts``."""
        cnt = (lambda v: int(v)) if exact_counts else masked_or_exact
        level = float(self.settings.get("ci_level", 0.95))
        pairs = []
        for _, r in self.rows.iterrows():
            measures = (
                Measure("PRR", r["prr"], r["prr_ci_low"], r["prr_ci_high"], level, bool(r["prr_signal"]),
                        chi2_yates=r["chi2_yates"]),
                Measure("ROR", r["ror"], r["ror_ci_low"], r["ror_ci_high"], level, bool(r["ror_signal"])),
                Measure("IC", r["ic"], r["ic_ci_low"], r["ic_ci_high"], level, bool(r["ic_signal"])),
                Measure("EBGM", r["ebgm"], r["eb05"], r["eb95"], 0.90, bool(r["ebgm_signal"]), qn=r["qn"],
                        prior_converged=bool(r["prior_converged"]), prior_boundary=bool(r["prior_boundary"])),
            )
            pairs.append(PairSignal(r["drug"], r["event"], r["event_kind"], r["role"], r["expected"] or None,
                                    cnt(r["a"]), cnt(r["a"]), cnt(r["b"]), cnt(r["c"]), cnt(r["d"]), r["e"], measures,
                                    r["source"] or None))
        return SignalsReport(
            question="Are the requested drug–event pairs reported disproportionately often in spontaneous reports?",
            settings=self.settings, data=self.table_summary, thresholds=THRESHOLDS,
            prior={"source": self.prior_source, **(self.prior_fit.to_dict() if self.prior_fit else {})},
            pairs=tuple(pairs), controls=tuple(self.control_verdicts()), notes=self.notes,
            caveats=("Disproportionality compares reporting, not incidence: it cannot show that a drug causes an event.",
                     "Spontaneous reports are subject to notoriety, stimulated reporting and confounding by indication."))

    def to_dict(self, *, exact_counts: bool = False) -> dict[str, Any]:
        """The results-file payload as plain JSON values (see :meth:`report`)."""
        return self.report(exact_counts=exact_counts).to_dict()

    def to_rich_table(self):
        """A rich Table for the terminal (counts 1–10 shown as <11)."""
        from rich.table import Table

        t = Table(title="Disproportionality (unique reports)", show_lines=False)
        for col in ("role", "drug", "event", "n", "E", "PRR (95% CI)", "ROR (95% CI)", "IC (95% CI)",
                    "EBGM (EB05–EB95)", "signals"):
            t.add_column(col, justify="right" if col in ("n", "E") else "left")

        def ci(est, lo, hi, fmt="{:.2f}"):
            if not np.isfinite(est):
                return "undefined"
            return f"{fmt.format(est)} ({fmt.format(lo)}–{fmt.format(hi)})"

        for _, r in self.rows.iterrows():
            sig = [m for m in ("PRR", "ROR", "IC", "EBGM") if r[f"{m.lower()}_signal"]]
            role = r["role"] if r["role"] != "control" else f"control ({r['expected']})"
            t.add_row(role, r["drug"], r["event"], mask_count(r["a"]), f"{r['e']:.1f}",
                      ci(r["prr"], r["prr_ci_low"], r["prr_ci_high"]), ci(r["ror"], r["ror_ci_low"], r["ror_ci_high"]),
                      ci(r["ic"], r["ic_ci_low"], r["ic_ci_high"]),
                      ci(r["ebgm"], r["eb05"], r["eb95"])
                      + ("" if r["prior_converged"] and not r["prior_boundary"] else " (!)"),
                      ", ".join(sig) or "none")
        return t


def _resolve_events(events, table: CountTable, groups: dict[str, TermGroup]) -> list[tuple[str, str]]:
    out = []
    for e in events:
        if e in groups:
            out.append((e, "group"))
        else:
            out.append((clean_term(e), "term"))
    return out


def scan(
    table: CountTable,
    *,
    drugs: list[str],
    events: list[str],
    groups: dict[str, TermGroup] | None = None,
    controls: list[Control] | None = None,
    prior: mgps.GammaMixturePrior | None = None,
    squash: bool = False,
    truncation: mgps.Truncation = "mixture",
    ci_level: float = 0.95,
    haldane: bool = False,
    strict: bool = False,
) -> ScanResult:
    """Score the requested pairs (all drugs × all events) and the controls.

    ``events`` are term-group keys (``"weight-loss"``) or single MedDRA terms.  ``prior``
    skips the fit (e.g. to reuse a published prior).  ``strict`` turns a non-converged prior
    fit into an error instead of a flagged result.
    """
    groups = groups or table.groups or {}
    if not drugs or not events:
        raise InputError([(Location("scan"), "give at least one drug and one event (term or group key)")])
    if table.n_reports == 0:
        raise InputError([(Location(table.source), "no reports to analyse (N = 0)")])
    wanted = []
    for d in drugs:
        for e, kind in _resolve_events(events, table, groups):
            wanted.append((clean_name(d), e, kind, "requested", "", ""))
    for c in controls or []:
        if c.events not in groups and c.events not in table.event_reports:
            continue
        wanted.append((c.drug, c.events, "group" if c.events in groups else "term", "control", c.expected, c.source))
    notes = []
    missing_groups = {e for _, e, k, _, _, _ in wanted if k == "group" and e not in table.event_reports}
    for g in sorted(missing_groups):
        notes.append(f"no report has any term of group {g!r}")
    for e in sorted({e for _, e, k, *_ in wanted if k == "term" and e not in table.event_reports}):
        notes.append(f"event term {e!r} appears in no report (check the spelling: MedDRA preferred terms)")
    unknown_drugs = sorted({d for d, *_ in wanted if d not in table.drug_reports})
    for d in unknown_drugs:
        notes.append(f"drug {d!r} appears in no report (check the name map)")

    pc = [table.pair(d, e) for d, e, *_ in wanted]
    a = np.array([p.a for p in pc], float)
    b = np.array([p.b for p in pc], float)
    c = np.array([p.c for p in pc], float)
    d = np.array([p.d for p in pc], float)
    e = np.array([p.e for p in pc], float)

    # ---- prior
    fit = None
    if prior is None:
        cells = table.prior_cells
        if len(cells) < 5:
            raise InputError([(Location(table.source), f"only {len(cells)} drug–event cell(s) with reports: too few "
                               "to fit an empirical-Bayes prior (give --prior or more data)")])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            fit = mgps.fit_prior(cells["n"].to_numpy(float), cells["e"].to_numpy(float), squash_data=squash,
                                 truncation=truncation)
        if not fit.converged:
            if strict:
                from ketaweight.core.errors import NumericalError

                raise NumericalError(f"MGPS prior fit did not converge: {fit.message}")
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=2)
        prior_used = fit.prior
        prior_source = "fitted"
        converged = fit.converged
        boundary = fit.boundary
    else:
        prior.validate()
        prior_used = prior
        prior_source = "given"
        converged = True
        boundary = False

    prr = dp.prr(a, b, c, d, ci_level=ci_level, haldane=haldane)
    ror = dp.ror(a, b, c, d, ci_level=ci_level, haldane=haldane)
    chi2 = dp.yates_chi2(a, b, c, d)
    ic = dp.information_component(a, np.nan_to_num(e, nan=0.0), ci_level=ci_level)
    ok_e = np.isfinite(e) & (e > 0)
    qn_ = np.full(a.size, np.nan)
    eb = np.full(a.size, np.nan)
    eb05 = np.full(a.size, np.nan)
    eb95 = np.full(a.size, np.nan)
    if ok_e.any():
        s = mgps.ebgm_scores(prior_used, a[ok_e], e[ok_e])
        qn_[ok_e], eb[ok_e], eb05[ok_e], eb95[ok_e] = s.qn, s.ebgm, s.eb05, s.eb95

    rows = pd.DataFrame(wanted, columns=["drug", "event", "event_kind", "role", "expected", "source"])
    rows = rows.assign(
        a=a.astype(np.int64), b=b.astype(np.int64), c=c.astype(np.int64), d=d.astype(np.int64), e=e,
        prr=prr["estimate"], prr_ci_low=prr["ci_low"], prr_ci_high=prr["ci_high"], chi2_yates=chi2,
        ror=ror["estimate"], ror_ci_low=ror["ci_low"], ror_ci_high=ror["ci_high"],
        ic=ic["estimate"], ic_ci_low=ic["ci_low"], ic_ci_high=ic["ci_high"],
        qn=qn_, ebgm=eb, eb05=eb05, eb95=eb95, prior_converged=converged, prior_boundary=boundary,
    )
    rows["prr_signal"] = (rows["prr"] >= 2) & (rows["chi2_yates"] >= 4) & (rows["a"] >= 3)
    rows["ror_signal"] = rows["ror_ci_low"] > 1
    rows["ic_signal"] = rows["ic_ci_low"] > 0
    rows["ebgm_signal"] = (rows["eb05"] >= 2) & converged
    if table.approximate_groups:
        notes.append(table.notes[0] if table.notes else "term groups are approximate")
    settings = {"drugs": [clean_name(x) for x in drugs], "events": list(events), "ci_level": ci_level,
                "haldane_correction": haldane, "squash": squash, "truncation": truncation,
                "groups": {k: sorted(g.terms) for k, g in groups.items() if k in {e for _, e, *_ in wanted}}}
    return ScanResult(rows=rows, prior_fit=fit, prior_source=prior_source, table_summary=table.summary(),
                      settings=settings, notes=tuple(notes))

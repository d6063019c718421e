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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ketaweight.core.errors import ConvergenceWarning, InputError, Location, NumericalError
from ketaweight.core.privacy import MIN_CELL_COUNT, SUPPRESSED, mask_count, masked_or_exact
from ketaweight.signals.report import ControlVerdict, Measure, PairSignal, SignalsReport
from ketaweight.signals import disproportionality as dp
from ketaweight.signals import mgps
from ketaweight.signals.mapping import Control, TermGroup, clean_term
from ketaweight.signals.tables import CountTable

__all__ = ["ScanResult", "scan", "score_pairs", "all_pairs", "all_pairs_parts", "fit_or_use_prior", "suppressed_rows", "THRESHOLDS"]

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
    prior: mgps.GammaMixturePrior
    """The prior the EBGM scores used (fitted or given)."""
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
        """The scan as a results-file payload.

        Unless ``exact_counts``, a pair whose 2×2 table has any cell from 1 to 10 is *suppressed*: its
        small cells read "<11" and everything a masked cell could be recovered from is withheld — the
        other cells, zeros included, read "suppressed"; E and every ratio with its interval (IC and E
        give ``a`` in one line, ``N − b − c − d`` another) are null.  Its signal flags stay (they say which side of a threshold a measure is,
        not a count)."""
        level = float(self.settings.get("ci_level", 0.95))
        hide = np.zeros(len(self.rows), bool) if exact_counts else suppressed_rows(self.rows)
        pairs = []
        for (_, r), h in zip(self.rows.iterrows(), hide, strict=True):
            def v(x: float) -> float:
                return float("nan") if h else x

            def cnt(x: int) -> int | str:
                if exact_counts:
                    return int(x)
                if not h:
                    return masked_or_exact(x)
                # a zero is withheld too: with the drug's and the event's totals (from other pairs beside
                # it) and N, b = 0 gives a = the drug's total, d = 0 gives a = drug + event − N
                return masked_or_exact(x) if 0 < x < MIN_CELL_COUNT else SUPPRESSED

            measures = (
                Measure("PRR", v(r["prr"]), v(r["prr_ci_low"]), v(r["prr_ci_high"]), level, bool(r["prr_signal"]),
                        chi2_yates=v(r["chi2_yates"])),
                Measure("ROR", v(r["ror"]), v(r["ror_ci_low"]), v(r["ror_ci_high"]), level, bool(r["ror_signal"])),
                Measure("IC", v(r["ic"]), v(r["ic_ci_low"]), v(r["ic_ci_high"]), level, bool(r["ic_signal"])),
                Measure("EBGM", v(r["ebgm"]), v(r["eb05"]), v(r["eb95"]), 0.90, bool(r["ebgm_signal"]), qn=v(r["qn"]),
                        prior_converged=bool(r["prior_converged"]), prior_boundary=bool(r["prior_boundary"])),
            )
            pairs.append(PairSignal(r["drug"], r["event"], r["event_kind"], r["role"], r["expected"] or None,
                                    cnt(r["a"]), cnt(r["a"]), cnt(r["b"]), cnt(r["c"]), cnt(r["d"]), v(r["e"]),
                                    measures, r["source"] or None, suppressed=bool(h)))
        data = dict(self.table_summary)
        if not exact_counts:
            data["reports"] = masked_or_exact(int(data.get("reports", 0)))
        return SignalsReport(
            question="Are the requested drug–event pairs reported disproportionately often in spontaneous reports?",
            settings=self.settings, data=data, thresholds=THRESHOLDS,
            prior={"source": self.prior_source,
                   **(self.prior_fit.to_dict() if self.prior_fit else {"prior": self.prior.to_dict()})},
            pairs=tuple(pairs), controls=tuple(self.control_verdicts()), notes=self.notes,
            caveats=("Disproportionality compares reporting, not incidence: it cannot show that a drug causes an "
                     "event.",
                     "Spontaneous reports are subject to notoriety, stimulated reporting and confounding by "
                     "indication.",
                     f"Pairs with a 2×2 cell of 1–{MIN_CELL_COUNT - 1} reports are suppressed: their counts, E and "
                     "ratios are withheld so the small cell cannot be recovered."))

    def to_dict(self, *, exact_counts: bool = False) -> dict[str, Any]:
        """The results-file payload as plain JSON values (see :meth:`report`)."""
        return self.report(exact_counts=exact_counts).to_dict()

    def to_rich_table(self):
        """A rich Table for the terminal, from the shared (suppressed) payload: counts 1–10 as <11,
        suppressed pairs' E and ratios withheld.  One row per pair with the four measures stacked, so
        it reads at 80 columns without cutting a number."""
        from rich.table import Table

        t = Table(title="Disproportionality (unique reports)", show_lines=True)
        t.add_column("pair", overflow="fold")
        t.add_column("reports", overflow="fold")
        t.add_column("measure (interval)", overflow="fold")
        t.add_column("signals", overflow="fold")
        for p in self.report().pairs:
            role = p.role if p.role != "control" else f"control, expected {p.expected_result}"
            e = "withheld" if p.suppressed else "undefined" if p.expected_count != p.expected_count \
                else f"{p.expected_count:,.1f}"
            lines = []
            for m in p.measures:
                flag = "" if p.suppressed or m.method != "EBGM" or (m.prior_converged and not m.prior_boundary) \
                    else " (!)"
                lines.append(f"{m.method} {p.interval(m.method)}{flag}")
            t.add_row(f"{p.drug} × {p.event}\n({role})", f"n {mask_count(p.a)}\nE {e}", "\n".join(lines),
                      ", ".join(p.signals) or "none")
        return t


def suppressed_rows(rows: pd.DataFrame) -> np.ndarray:
    """Pairs whose 2×2 table has a cell from 1 to 10 (complementary suppression: see :meth:`ScanResult.report`)."""
    small = np.zeros(len(rows), bool)
    for c in ("a", "b", "c", "d"):
        x = rows[c].to_numpy()
        small |= (x > 0) & (x < MIN_CELL_COUNT)
    return small


def _resolve_events(events: list[str], groups: dict[str, TermGroup]) -> list[tuple[str, str]]:
    return [(e, "group") if e in groups else (clean_term(e), "term") for e in events]


def fit_or_use_prior(table: CountTable, prior: mgps.GammaMixturePrior | None = None, *, squash: bool = False,
                     truncation: mgps.Truncation = "mixture", strict: bool = False
                     ) -> tuple[mgps.GammaMixturePrior, mgps.PriorFit | None]:
    """The EBGM prior: ``prior`` as given (validated), or fitted on every single-term cell of ``table``
    with n ≥ 1.  A fit that did not converge is an error under ``strict``, else a warning."""
    if prior is not None:
        prior.validate()
        return prior, None
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
            raise NumericalError(f"MGPS prior fit did not converge: {fit.message}")
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=3)
    return fit.prior, fit


def score_pairs(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray,
                prior: mgps.GammaMixturePrior, *, converged: bool = True, boundary: bool = False,
                ci_level: float = 0.95, haldane: bool = False) -> dict[str, np.ndarray]:
    """PRR (CI, Yates χ²), ROR (CI), IC (CI), EBGM (Qn, EB05, EB95) and the four signal flags for
    vectors of 2×2 tables and expected counts."""
    a, b, c, d, e = (np.asarray(x, float) for x in (a, b, c, d, e))
    prr = dp.prr(a, b, c, d, ci_level=ci_level, haldane=haldane)
    ror = dp.ror(a, b, c, d, ci_level=ci_level, haldane=haldane)
    chi2 = dp.yates_chi2(a, b, c, d)
    ic = dp.information_component(a, np.nan_to_num(e, nan=0.0), ci_level=ci_level)
    ok_e = np.isfinite(e) & (e > 0)
    qn_, eb, eb05, eb95 = (np.full(a.size, np.nan) for _ in range(4))
    if ok_e.any():
        s = mgps.ebgm_scores(prior, a[ok_e], e[ok_e])
        qn_[ok_e], eb[ok_e], eb05[ok_e], eb95[ok_e] = s.qn, s.ebgm, s.eb05, s.eb95
    with np.errstate(invalid="ignore"):
        out = {"prr": prr["estimate"], "prr_ci_low": prr["ci_low"], "prr_ci_high": prr["ci_high"], "chi2_yates": chi2,
               "ror": ror["estimate"], "ror_ci_low": ror["ci_low"], "ror_ci_high": ror["ci_high"],
               "ic": ic["estimate"], "ic_ci_low": ic["ci_low"], "ic_ci_high": ic["ci_high"],
               "qn": qn_, "ebgm": eb, "eb05": eb05, "eb95": eb95}
        out["prr_signal"] = (out["prr"] >= 2) & (chi2 >= 4) & (a >= 3)
        out["ror_signal"] = out["ror_ci_low"] > 1
        out["ic_signal"] = out["ic_ci_low"] > 0
        out["ebgm_signal"] = (eb05 >= 2) & converged
    out["prior_converged"] = np.full(a.size, converged)
    out["prior_boundary"] = np.full(a.size, boundary)
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

    Drug names go through the table's own key function (brand and salt names → ingredient, as the
    table's names did); ``events`` are term-group keys (``"weight-loss"``) or single MedDRA terms.
    ``prior`` skips the fit (e.g. to reuse a published prior).  ``strict`` turns a non-converged
    prior fit into an error instead of a flagged result.
    """
    groups = groups or table.groups or {}
    if not drugs or not events:
        raise InputError([(Location("scan"), "give at least one drug and one event (term or group key)")])
    if table.n_reports == 0:
        raise InputError([(Location(table.source), "no reports to analyse (N = 0)")])
    keys = [table.drug_key(d) for d in drugs]
    empty = [d for d, k in zip(drugs, keys, strict=True) if not k]
    if empty:
        raise InputError([(Location("--drug"), f"{empty[0]!r} is not a drug name (nothing left after cleaning)")])
    wanted = []
    for d in dict.fromkeys(keys):
        for e, kind in _resolve_events(events, groups):
            wanted.append((d, e, kind, "requested", "", ""))
    for ctl in controls or []:
        if ctl.events not in groups and ctl.events not in table.event_reports:
            continue
        wanted.append((table.drug_key(ctl.drug), ctl.events, "group" if ctl.events in groups else "term", "control",
                       ctl.expected, ctl.source))
    notes = []
    for g in sorted({e for _, e, k, *_ in wanted if k == "group" and e not in table.event_reports}):
        notes.append(f"no report has any term of group {g!r}")
    for e in sorted({e for _, e, k, *_ in wanted if k == "term" and e not in table.event_reports}):
        notes.append(f"event term {e!r} appears in no report (check the spelling: MedDRA preferred terms)")
    for d in sorted({d for d, *_ in wanted if d not in table.drug_reports}):
        notes.append(f"drug {d!r} appears in no report (check the name map)")

    pc = [table.pair(d, e) for d, e, *_ in wanted]
    a, b, c, d, e = (np.array([getattr(p, k) for p in pc], float) for k in ("a", "b", "c", "d", "e"))
    prior_used, fit = fit_or_use_prior(table, prior, squash=squash, truncation=truncation, strict=strict)
    converged = fit.converged if fit is not None else True
    boundary = fit.boundary if fit is not None else False
    scores = score_pairs(a, b, c, d, e, prior_used, converged=converged, boundary=boundary, ci_level=ci_level,
                         haldane=haldane)
    rows = pd.DataFrame(wanted, columns=["drug", "event", "event_kind", "role", "expected", "source"])
    rows = rows.assign(a=a.astype(np.int64), b=b.astype(np.int64), c=c.astype(np.int64), d=d.astype(np.int64), e=e,
                       **scores)
    if table.approximate_groups:
        notes.append(table.notes[-1] if table.notes else "term groups are approximate")
    settings = {"drugs": list(dict.fromkeys(keys)), "events": list(events), "ci_level": ci_level,
                "haldane_correction": haldane, "squash": squash, "truncation": truncation,
                "groups": {k: sorted(g.terms) for k, g in groups.items() if k in {e for _, e, *_ in wanted}}}
    return ScanResult(rows=rows, prior_fit=fit, prior_source="fitted" if fit is not None else "given", prior=prior_used,
                      table_summary=table.summary(), settings=settings, notes=tuple(notes))


PART_ROWS = 1_000_000
"""Pairs scored and handed on at a time by :func:`all_pairs_parts` (≈ 250 MB of columns each)."""


def all_pairs(table: CountTable, prior: mgps.GammaMixturePrior, *, converged: bool = True, boundary: bool = False,
              ci_level: float = 0.95, haldane: bool = False, exact_counts: bool = False) -> pd.DataFrame:
    """Every drug–event cell of ``table`` with n ≥ 1 (single terms and groups) scored with all four
    methods: one row per pair (drug, event, kind, a, b, c, d, e, the measures, ``suppressed``).

    Unless ``exact_counts``, suppressed pairs (a 2×2 cell of 1–10) have every count, E and ratio set
    to null, as in :meth:`ScanResult.report`; their signal flags stay."""
    return next(all_pairs_parts(table, prior, converged=converged, boundary=boundary, ci_level=ci_level,
                                haldane=haldane, exact_counts=exact_counts, part_rows=max(table.cell_n.size, 1)))


def all_pairs_parts(table: CountTable, prior: mgps.GammaMixturePrior, *, converged: bool = True,
                    boundary: bool = False, ci_level: float = 0.95, haldane: bool = False, exact_counts: bool = False,
                    part_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """:func:`all_pairs` in consecutive parts of at most ``part_rows`` pairs (:data:`PART_ROWS` unless
    given; at least one part), so that writing every pair of the FAERS history needs memory for one
    part, not for all of them.  Every score is a function of its own cell, so the parts put together are :func:`all_pairs`'s
    frame to the bit; the columns' types are the same in every part (the counts are nullable in
    all of them when any pair of the table is suppressed)."""
    cd, ce = table.cell_drug, table.cell_event
    a = table.cell_n.astype(float)
    r, col = table.drug_n[cd].astype(float), table.event_n[ce].astype(float)
    b, c = r - a, col - a
    d = table.n_reports - r - col + a
    del r, col
    hide = np.zeros(a.size, bool) if exact_counts else suppressed_rows(pd.DataFrame({"a": a, "b": b, "c": c, "d": d}))
    masked = bool(hide.any())
    drugs, events, part_rows = list(table.drugs), list(table.events), part_rows or PART_ROWS
    for lo in range(0, max(a.size, 1), part_rows):
        s = slice(lo, lo + part_rows)
        scores = score_pairs(a[s], b[s], c[s], d[s], table.cell_e[s], prior, converged=converged, boundary=boundary,
                             ci_level=ci_level, haldane=haldane)
        counts = {k: v[s].astype(np.int64) for k, v in (("a", a), ("b", b), ("c", c), ("d", d))}
        values = {"e": table.cell_e[s], **scores}
        h = hide[s]
        if masked:  # masked in numpy, column by column (pandas' mask copies each column twice)
            counts = {k: pd.arrays.IntegerArray(v, h.copy()) for k, v in counts.items()}
            values = {k: v if k in _FLAGS else np.where(h, np.nan, v) for k, v in values.items()}
        out = pd.DataFrame({"drug": pd.Categorical.from_codes(cd[s], categories=drugs),
                            "event": pd.Categorical.from_codes(ce[s], categories=events),
                            "kind": pd.Categorical.from_codes((ce[s] < table.n_terms).astype(np.int8),
                                                              categories=["group", "term"]),
                            **counts, **values})
        out["suppressed"] = h if masked else False
        yield out


_FLAGS = ("prr_signal", "ror_signal", "ic_signal", "ebgm_signal", "prior_converged", "prior_boundary")
"""Columns of :func:`score_pairs` that stay on suppressed rows (which side of a threshold, not a count)."""

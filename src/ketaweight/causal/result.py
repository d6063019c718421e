"""The frozen result every estimator returns, and its summary (text and HTML).

One vocabulary everywhere (STYLE.md): ``treatment``, ``outcome``, ``estimand``, ``method``,
``estimate``, ``se``, ``ci_low``, ``ci_high``, ``n``; ``variance`` says in words how the
standard error was computed.  The JSON form is documented in ``docs/results-schema.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.core.protocol import Count, Real, Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class CausalResult(Result):
    """One estimator's answer on one table.

    Attributes
    ----------
    treatment, outcome:
        Column names.
    estimand:
        ``"ATE"`` or ``"ATT"``.
    method:
        Estimator name (``"crude"``, ``"standardization"``, ``"ipw"``, ``"aipw"``, ``"g-estimation"``).
    estimate:
        Mean difference treated − untreated, in the outcome's units.
    se, ci_low, ci_high, ci_level:
        Standard error and confidence interval (outcome units).
    n:
        Rows analysed (censored rows included); ``diagnostics["n_observed_outcome"]`` has
        those with an observed outcome.
    variance:
        How ``se`` and the CI were computed, in words.
    diagnostics:
        Balance, overlap, weights, models, attrition (see ``docs/results-schema.md``).
    warnings:
        Warning messages raised while fitting, each naming its class and threshold.
    sensitivity:
        E-values (``evalue_estimate``, ``evalue_ci``) and how they were approximated.
    settings:
        The estimator's settings and the analysis spec, for reproducibility.
    """

    treatment: str
    outcome: str
    estimand: str
    method: str
    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    n: Count
    variance: str
    diagnostics: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    ci_level: float = 0.95
    sensitivity: dict[str, Any] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> Summary:
        """A printable summary with numbered notes (``as_text()``, ``as_html()``)."""
        return summarise([self])

    def plot_balance(self) -> Any:
        """|standardized mean differences| before and after weighting (a Love plot), as a Figure."""
        from ketaweight.core import figures

        bal = self.diagnostics["balance"]
        return figures.balance_plot(bal["covariates"], bal["smd_unweighted"], bal["smd_weighted"],
                                    threshold=bal["threshold"], alt=f"Balance of the covariates ({self.method})")

    def plot_overlap(self) -> Any:
        """Mirrored histograms of the propensity score by arm (from the stored quantiles), as a Figure."""
        from ketaweight.core import figures

        ov = self.diagnostics["overlap"]
        return figures.overlap_plot(ov["quantiles"], ov["treated"], ov["control"],
                                    alt=f"Propensity overlap of treated and untreated ({self.method})")

    def frame_rows(self) -> list[dict[str, Any]]:
        """One row: the estimate with the diagnostics a reader checks first (balance, weights, overlap,
        E-value, how many warnings)."""
        d = self.diagnostics or {}
        return [{"method": self.method, "estimand": self.estimand, "treatment": self.treatment, "outcome": self.outcome,
                 "estimate": self.estimate, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
                 "ci_level": self.ci_level, "n": self.n,
                 "max_abs_smd_weighted": (d.get("balance") or {}).get("max_abs_smd_weighted"),
                 "ess": (d.get("weights") or {}).get("ess"),
                 "share_outside_support": (d.get("overlap") or {}).get("share_outside_support"),
                 "evalue_ci": (self.sensitivity or {}).get("evalue_ci"), "warnings": len(self.warnings),
                 "variance": self.variance}]


def summarise(results: Sequence[CausalResult]) -> Summary:
    """Several results of the same question side by side, with the variance methods and warnings as notes."""
    if not results:
        raise ValueError("no results to summarise; fit at least one estimator")
    first = results[0]
    title = f"Effect of {first.treatment} on {first.outcome} ({first.estimand})"
    header = ("method", "estimate", "se", f"{first.ci_level:.0%} CI", "n", "max |SMD| w", "ESS t/c", "E-value (CI)")
    rows = []
    notes: list[str] = []
    for r in results:
        d = r.diagnostics
        ev = r.sensitivity
        rows.append(
            (
                r.method,
                f"{r.estimate:.3f}",
                f"{r.se:.3f}",
                f"({r.ci_low:.3f}, {r.ci_high:.3f})",
                _analysed_of_eligible(r),
                f"{d['balance']['max_abs_smd_weighted']:.3f}" if d.get("adjusted") else "—",
                _fmt_ess(d) if d.get("weights_used_by_estimator") else "—",
                _fmt_evalue(ev),
            )
        )
        notes.append(f"{r.method}: variance by {r.variance}")
        notes.extend(_positivity_notes(r))
        notes.extend(f"{r.method}: {w}" for w in r.warnings)
    trimmed = next((r.diagnostics["trimming"] for r in results if r.diagnostics.get("trimming")), None)
    if trimmed is not None:
        notes.insert(0, f"population trimmed ({trimmed['description']}): propensity in [{trimmed['bounds'][0]:.3g}, "
                        f"{trimmed['bounds'][1]:.3g}], {mask_count(trimmed['n_excluded'])} rows removed "
                        f"({mask_count(trimmed['treated']['n_excluded'])} treated, "
                        f"{mask_count(trimmed['control']['n_excluded'])} untreated); every estimate is the "
                        f"{trimmed['estimand']}")
    if any(r.sensitivity.get("approximation") for r in results):
        notes.append("E-values: " + next(r.sensitivity["approximation"] for r in results if r.sensitivity))
    return Summary(title, header, tuple(rows), tuple(notes))


def _fmt_ess(d: dict[str, Any]) -> str:
    """Kish ESS of the weights in each arm ('treated/untreated'), or the pooled ESS when per-arm is absent."""
    arms = d["weights"].get("by_arm")
    if not arms:
        return f"{d['weights']['ess']:.0f}"
    return f"{arms['treated']['ess']:.0f}/{arms['control']['ess']:.0f}"


def _positivity_notes(r: CausalResult) -> list[str]:
    """What an estimator did about positivity and which nuisance models it used, in words."""
    d, out = r.diagnostics, []
    t = d.get("truncation")
    if t:
        if t["kind"] == "by arm":
            parts = [f"{arm} capped at {v['cap']:.3g} ({mask_count(v['capped']['n'])} rows, "
                     f"{v['share_of_weight_removed']:.1%} of the arm's weight removed)" for arm, v in t["arms"].items()]
            out.append(f"{r.method}: weights truncated within each weighted arm at its {t['upper_percentile']:g}th "
                       f"percentile: " + "; ".join(parts))
        else:
            parts = [f"{arm}: {mask_count(v['clipped']['n'])} rows clipped, {v['share_of_weight_changed']:.1%} of the "
                     f"arm's weight changed" for arm, v in t["arms"].items()]
            out.append(f"{r.method}: weights clipped at the pooled percentiles {t['percentiles']}: " + "; ".join(parts))
    learners = d.get("learners")
    if learners and learners.get("ensemble_weights"):
        cands = learners.get("candidates", {})
        shares = "; ".join(f"{part} " + ", ".join(f"{c} {v:.0%}" for c, v in zip(cands.get(part, ()), w))
                           for part, w in learners["ensemble_weights"].items())
        out.append(f"{r.method}: nuisance models by {learners['description']}; ensemble weights: {shares}")
    calibration = (learners or {}).get("propensity_calibration")
    if calibration:
        out.append(f"{r.method}: cross-fitted propensity recalibrated by logistic regression on its logit; "
                   f"propensity recalibration slope {calibration['slope']:.2f} (1 = it was calibrated already)")
    return out


def _analysed_of_eligible(r: CausalResult) -> str:
    """'n of n0' when rows were excluded before the analysis (counts masked; an exclusion of 1–10 rows
    is written '+<11 excluded' so the two totals cannot be differenced)."""
    steps = r.diagnostics.get("attrition") or []
    n0 = steps[0].get("n_before") if steps else None
    if not isinstance(n0, int) or not isinstance(r.n, int) or n0 == r.n:
        return mask_count(r.n)
    excluded = n0 - r.n
    return f"{mask_count(r.n)} of {mask_count(n0)}" if excluded >= 11 else f"{mask_count(r.n)} (+<11 excluded)"


def _fmt_evalue(ev: dict[str, Any]) -> str:
    e, c = ev.get("evalue_estimate"), ev.get("evalue_ci")
    if e is None:
        return "—"
    return f"{e:.2f} ({c:.2f})" if c is not None else f"{e:.2f}"

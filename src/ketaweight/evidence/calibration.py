"""Grading with a network: calibrated intervals, the empirical null, consistency across sites, replication.

When a network synthesis (``kind = "network"``, :mod:`ketaweight.network.synthesis`) is in the
run, the grade reads it instead of one site's numbers where the network knows better:

* **the number** is the calibrated network estimate (pooled controls, the study's pooling) and its
  calibrated 95% CI; precision and strength are judged on it;
* **systematic error** (replaces the single negative control): the expected absolute systematic
  error (EASE) of the empirical null of the pooled raw controls (the error the network's controls
  show before calibration) against the minimal important difference — EASE ≤
  MID/4 → 0; larger → −1 (calibration widens the interval for the error it sees; the downgrade is
  for the risk that the controls miss some);
* **consistency across sites** (GRADE inconsistency): I² of the calibrated site estimates > 50% with
  sites whose calibrated CIs lie on opposite sides of 0 → −1;
* **replication**: at least 3 sites whose calibrated CIs mostly (≥ 2/3) agree with the network's
  conclusion (exclude 0 in its direction, or all cover 0 when it finds no effect) lift the cap on
  one data source: the level may reach *high*;
* **balance and overlap**: the worst site's diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ketaweight.causal.result import CausalResult
from ketaweight.core.results import ResultsFile
from ketaweight.network.synthesis import NetworkResult, SiteSummary

Conclusion = Literal["loss", "gain", "negligible", "no detectable effect", "not estimable"]

LEVEL_HIGH = 3
"""Index of 'high' in the grade's LEVELS: reachable only with replication."""
EASE_SHARE_OF_MID = 0.25
"""EASE above this share of the MID downgrades once."""
I2_INCONSISTENT = 50.0
"""I² (%) above which sites disagreeing in direction count as inconsistent."""
MIN_REPLICATING_SITES = 3
REPLICATING_SHARE = 2 / 3


@dataclass(frozen=True)
class NetworkFinding:
    """A criterion row in the grade's vocabulary (name, question, finding, verdict, grade change, rule)."""

    name: str
    question: str
    finding: str
    verdict: str
    grade_change: int
    rule: str


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    s = f"{x:.{digits}f}"
    return f"{0:.{digits}f}" if float(s) == 0 else s.replace("-", "−")


def network_primary(r: NetworkResult) -> CausalResult | None:
    """The calibrated network estimate as the grade's primary estimate (estimate, CI, sensitivity,
    worst-site diagnostics), or None when the calibrated interval is unbounded."""
    c = r.calibrated
    if c.calibrated_estimate is None or c.calibrated_ci_low is None or c.calibrated_ci_high is None:
        return None
    smds = [s.balance.get("max_abs_smd_weighted") for s in r.sites]
    outs = [s.balance.get("share_outside_support") for s in r.sites]
    worst_smd = None if None in smds or not smds else max(smds)  # type: ignore[type-var]
    worst_out = None if None in outs or not outs else max(outs)  # type: ignore[type-var]
    return CausalResult(
        treatment="treated", outcome="outcome_change", estimand=r.estimand, method="aipw",
        estimate=c.calibrated_estimate, se=c.calibrated_se if c.calibrated_se is not None else float("nan"),
        ci_low=c.calibrated_ci_low, ci_high=c.calibrated_ci_high, n=sum(s.n for s in r.sites if isinstance(s.n, int)),
        variance=f"empirically calibrated, pooled over {len(r.sites)} sites ({r.primary_pooling})",
        diagnostics={"balance": {"max_abs_smd_weighted": worst_smd}, "overlap": {"share_outside_support": worst_out},
                     "thresholds": {}},
        ci_level=c.ci_level, sensitivity=dict(r.sensitivity))


def systematic_error(r: NetworkResult, mid_kg: float) -> NetworkFinding:
    """The empirical-null rule (replaces the single negative control)."""
    c = r.pool_then_calibrate  # the error the pooled controls show before any calibration
    null = c.null
    threshold = EASE_SHARE_OF_MID * mid_kg
    rule = (f"EASE of the pooled empirical null ≤ {threshold:g} kg ({EASE_SHARE_OF_MID:g} × MID) → 0; larger → −1 "
            "(calibrated intervals already widen for the error the controls show)")
    q = ("How much systematic error do the negative controls show (confounding, selection, measurement), pooled over "
         "the sites?")
    per_site = "; ".join(f"{s.site} {_fmt(s.calibration.ease, 3)}" for s in r.sites)
    finding = (f"{c.n_negative} pooled negative controls: null mean {_fmt(null.mean, 3)} kg, SD {_fmt(null.sd, 3)} kg, "
               f"EASE {_fmt(c.ease, 3)} kg (per site: {per_site})")
    if c.ease > threshold:
        return NetworkFinding("Systematic error (empirical null)", q, finding, "against", -1, rule)
    return NetworkFinding("Systematic error (empirical null)", q, finding, "supports", 0, rule)


def consistency_across_sites(r: NetworkResult) -> NetworkFinding:
    """GRADE's inconsistency, from the sites."""
    cons = r.consistency
    rule = f"I² > {I2_INCONSISTENT:g}% and sites whose calibrated CIs lie on opposite sides of 0 → −1; otherwise 0"
    q = "Do the databases agree with each other?"
    below = [s.site for s in r.sites if (s.calibration.calibrated_ci_high or 0) < 0]
    above = [s.site for s in r.sites if (s.calibration.calibrated_ci_low or 0) > 0]
    pi = (f"; 95% prediction interval for a new site {_fmt(cons.prediction_low)} to {_fmt(cons.prediction_high)} kg"
          if cons.prediction_low is not None else "")
    finding = f"{cons.k} sites: I² {cons.i2:.0f}%, τ {_fmt(cons.tau, 3)} kg{pi}"
    if cons.k < 2:
        return NetworkFinding("Consistency across sites", q, finding, "not assessed", 0, rule)
    if cons.i2 > I2_INCONSISTENT and below and above:
        return NetworkFinding("Consistency across sites", q, finding + f"; loss at {', '.join(below)}, gain at "
                              f"{', '.join(above)}", "against", -1, rule)
    return NetworkFinding("Consistency across sites", q, finding, "supports", 0, rule)


def replication(r: NetworkResult, conclusion: Conclusion, raw_level: int) -> NetworkFinding:
    """Replication across databases: lifts the one-data-source cap when the sites agree."""
    sites = r.sites
    k = len(sites)
    q = "Has the answer been replicated in another data source or a randomised trial?"
    rule = (f"≥ {MIN_REPLICATING_SITES} sites and ≥ {REPLICATING_SHARE:.0%} of them agreeing with the network's conclusion "
            "(calibrated CI excluding 0 in its direction, or covering 0 when no effect is found) → the level may reach "
            "'high'; otherwise it is capped at 'moderate'")

    def agrees(s: SiteSummary) -> bool:
        lo, hi = s.calibration.calibrated_ci_low, s.calibration.calibrated_ci_high
        if lo is None or hi is None:
            return False
        if conclusion == "loss":
            return hi < 0
        if conclusion == "gain":
            return lo > 0
        return lo <= 0 <= hi

    n_agree = sum(agrees(s) for s in sites)
    replicated = k >= MIN_REPLICATING_SITES and n_agree >= REPLICATING_SHARE * k
    cap = LEVEL_HIGH if replicated else 2
    finding = f"{n_agree} of {k} databases agree with the network's conclusion ({conclusion})"
    change = min(0, cap - raw_level)
    if replicated:
        return NetworkFinding("Replication", q, finding + ": replicated", "supports", change, rule)
    return NetworkFinding("Replication", q, finding + ": not replicated in enough databases", "against" if change else
                          "not assessed", change, rule)


def reword(sentence: str, network: ResultsFile) -> str:
    """The sentence, saying that the number is the calibrated estimate of a network."""
    k = len(network.results.sites)
    simulated = network.data is not None and network.data.synthetic
    where = f"Across {k} {'simulated ' if simulated else ''}databases"
    calibrated = "calibrated with negative and positive controls"
    for lead in ("In these simulated data", "In these data"):
        if sentence.startswith(lead):
            rest = sentence[len(lead):]
            if rest.startswith(" ("):  # "In these data (source)"
                rest = rest[rest.index(")") + 1:]
            return f"{where} ({calibrated}){rest}"
    return sentence

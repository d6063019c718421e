"""Report section: many databases — the network's sites, their calibration and the pooled answer.

Shown when the run folder holds a network synthesis (``kind = "network"``, written by
``ketaweight network synthesize``; :class:`ketaweight.network.synthesis.NetworkResult`): a forest plot
by site (uncalibrated and calibrated), the pooled estimates side by side, the negative controls' funnel
with the fitted empirical null, and the leave-one-out check that calibration restores coverage at each
site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ketaweight.core import figures as fg
from ketaweight.core.privacy import mask_count
from ketaweight.core.results import ResultsFile, read_result
from ketaweight.evidence.grade import fmt_num
from ketaweight.network.calibration import CalibratedEstimate
from ketaweight.network.synthesis import NetworkResult
from ketaweight.pipelines.results import NetworkTruth
from ketaweight.report.blocks import ci_text, data_label, table
from ketaweight.report.collect import RunResults


def _network_truth(run: RunResults) -> NetworkTruth | None:
    """The simulated network's truth when it lies beside the run (the demo's ``network/`` folder)."""
    for candidate in (Path(run.folder) / "network_truth.json", Path(run.folder).parent / "network_truth.json",
                      Path(run.folder).parent / "network" / "network_truth.json"):
        if candidate.exists():
            return read_result(candidate, NetworkTruth).results
    return None


def _calibrated(c: CalibratedEstimate, fallback: tuple[float, float, float]) -> tuple[float, float, float]:
    """The calibrated estimate and CI, or ``fallback`` where calibration gave no bounded interval."""
    if c.calibrated_estimate is None or c.calibrated_ci_low is None or c.calibrated_ci_high is None:
        return fallback
    return c.calibrated_estimate, c.calibrated_ci_low, c.calibrated_ci_high


def network_section(run: RunResults, network: ResultsFile) -> dict[str, Any]:
    """The section dict (``id``, ``title``, ``paragraphs``, ``tables``, ``figures``)."""
    r: NetworkResult = network.results
    label = data_label(network)
    unit = r.outcome_unit
    c = r.calibrated
    prim = r.primary
    sites = r.sites
    sec: dict[str, Any] = {"id": "network", "title": "Many databases: the network's answer", "tables": [], "figures": [],
                           "paragraphs": [
        f"The same study ('{r.study_name}', study hash {r.study_hash[:12]}…) ran in {len(sites)} databases that never "
        "shared a patient row: each sent an aggregate-only bundle (estimates, standard errors, likelihood profiles, "
        "diagnostics, attrition with counts under 11 masked, and its negative- and positive-control estimates).",
        "Negative controls are outcomes ketamine cannot change but that share weight's confounding; their estimates "
        "show each database's systematic error (the empirical null). Positive controls inject known effects into them. "
        f"Calibration widens and shifts each interval by the error the controls show (Schuemie et al. 2014, 2018) ({label}).",
    ]}
    lg = r.pool_then_calibrate
    if c.calibrated_estimate is not None:
        sec["paragraphs"].append(
            f"Calibrated network estimate: {fmt_num(c.calibrated_estimate)} {unit} (95% CI "
            f"{ci_text(c.calibrated_ci_low, c.calibrated_ci_high)}), calibrated p = {c.calibrated_p:.2g}; "
            f"uncalibrated ({r.primary_pooling}): {fmt_num(prim.estimate)} {unit} "
            f"({ci_text(prim.ci_low, prim.ci_high)}). Each site was calibrated with its own controls before "
            f"pooling; the pooled calibrated controls then show the systematic error the sites share: mean "
            f"{fmt_num(c.null.mean, 3)}, SD {fmt_num(c.null.sd, 3)} {unit} (before any calibration the "
            f"pooled controls showed an expected absolute systematic error of {fmt_num(lg.ease, 3)} {unit}).")
    rows, labels, est, lo, hi, orange = [], [], [], [], [], []
    for s in sites:
        cal = s.calibration
        rows.append([s.site, mask_count(s.n), f"{fmt_num(s.estimate)} ({ci_text(s.ci_low, s.ci_high)})",
                     "unbounded" if cal.calibrated_estimate is None else
                     f"{fmt_num(cal.calibrated_estimate)} ({ci_text(cal.calibrated_ci_low, cal.calibrated_ci_high)})",
                     f"{fmt_num(cal.null.mean, 3)} / {fmt_num(cal.null.sd, 3)}", fmt_num(cal.ease, 3), str(cal.n_negative)])
        ce, clo, chi = _calibrated(cal, (s.estimate, s.ci_low, s.ci_high))
        labels += [s.site, f"{s.site} calibrated"]
        est += [s.estimate, ce]
        lo += [s.ci_low, clo]
        hi += [s.ci_high, chi]
        orange += [False, True]
    sec["tables"].append(table(f"Each database, before and after calibration with its own controls ({unit}) — {label}",
                               ["site", "patients", "estimate (95% CI)", "calibrated (95% CI)", "null mean / SD",
                                "EASE", "negative controls"], rows))
    ce, clo, chi = _calibrated(c, (prim.estimate, prim.ci_low, prim.ci_high))
    labels += [f"network ({r.primary_pooling})", "network calibrated"]
    est += [prim.estimate, ce]
    lo += [prim.ci_low, clo]
    hi += [prim.ci_high, chi]
    orange += [False, True]
    sec["figures"].append(fg.forest_plot(labels, est, lo, hi, unit=f"weight change ({unit})", highlight=orange,
                                         alt=f"Forest plot by database: each site's estimate with its 95% CI, before "
                                             f"(blue) and after calibration (orange), and the network's ({label})"))
    pooled_rows = [[key, fmt_num(m.estimate, 3), ci_text(m.ci_low, m.ci_high), fmt_num(m.tau, 3),
                    f"{m.i2:.0f}%", ci_text(m.prediction_low, m.prediction_high)] for key, m in r.pooled.items()]
    b = r.bayesian
    pooled_rows.append(["bayesian (likelihood profiles)", fmt_num(b.mu, 3), ci_text(b.mu_ci_low, b.mu_ci_high),
                        fmt_num(b.tau, 3), "—", "—"])
    pooled_rows.append(["pool, then calibrate with the pooled controls (OHDSI LEGEND)", fmt_num(lg.calibrated_estimate, 3),
                        ci_text(lg.calibrated_ci_low, lg.calibrated_ci_high), "—", "—", "—"])
    tp = r.calibrate_then_pool
    pooled_rows.append(["calibrate each site, then pool", fmt_num(tp.estimate, 3), ci_text(tp.ci_low, tp.ci_high),
                        fmt_num(tp.tau, 3), f"{tp.i2:.0f}%", ci_text(tp.prediction_low, tp.prediction_high)])
    if c.calibrated_estimate is not None:
        pooled_rows.append(["… and calibrated with the pooled calibrated controls (the answer)",
                            fmt_num(c.calibrated_estimate, 3), ci_text(c.calibrated_ci_low, c.calibrated_ci_high),
                            "—", "—", "—"])
    sec["tables"].append(table(f"Pooled over {len(sites)} databases ({unit}) — {label}",
                               ["method", "estimate", "95% CI", "τ", "I²", "95% prediction interval"], pooled_rows))
    negatives = [pc for pc in r.pooled_controls if pc.true_effect == 0]
    if negatives:
        sec["figures"].append(fg.funnel_plot([pc.estimate for pc in negatives], [pc.se for pc in negatives],
                                             lg.null.mean, lg.null.sd, unit=f"{unit}-equivalents",
                                             outcome=(prim.estimate, lg.se),
                                             alt=f"Funnel of the {len(negatives)} negative controls pooled over the sites, "
                                                 f"before calibration, with their fitted empirical null (mean "
                                                 f"{fmt_num(lg.null.mean, 3)}, SD {fmt_num(lg.null.sd, 3)}) and "
                                                 f"the region of random error only ({label})"))
    loo_rows = []
    for s in sites:
        loo = s.calibration.loo
        if loo is None:
            continue
        cov, ti = loo.coverage.get("0.95", {}), loo.type_i.get("0.95")
        for effect, v in sorted(cov.items(), key=lambda kv: -float(kv[0])):
            loo_rows.append([s.site, effect, f"{100 * v['uncalibrated']:.0f}%", f"{100 * v['calibrated']:.0f}%",
                             f"{100 * ti['uncalibrated']:.0f}% → {100 * ti['calibrated']:.0f}%" if ti and float(effect) == 0 else ""])
    if loo_rows:
        sec["tables"].append(table(f"Does calibration work here? Each control calibrated without its own group: share of "
                                   f"95% CIs covering the true effect, and of p < 0.05 among negative controls — {label}",
                                   ["site", f"true effect ({unit})", "uncalibrated coverage", "calibrated coverage",
                                    "type-I error"], loo_rows))
    truth = _network_truth(run)
    if truth is not None and truth.weight_change_kg is not None:
        biased = [s.site for s in truth.sites if s.unmeasured_confounder]
        sec["paragraphs"].append(
            f"Check against the simulator's truth: the mean of the sites' true effects is "
            f"{fmt_num(truth.weight_change_kg.ate_mean_of_sites)} kg"
            + (f"; {', '.join(biased)} had an unmeasured confounder (motivated patients also ate less), which only "
               "its negative controls could show." if biased else "."))
    sec["paragraphs"] += [f"Note: {w}" for w in r.warnings]
    return sec

"""Report sections 5 and 6 from the weight study's mechanisms results (``kind = "mechanisms"``):
the three mechanisms (mediation), and dose, frequency, duration and individual variability.
The simulator's truth is shown beside them when the data are simulated.
"""

from __future__ import annotations

from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.core.results import ResultsFile
from ketaweight.evidence.extract import curves, found_rows, gradient_rows, mediation_rows, subgroup_rows
from ketaweight.evidence.grade import fmt_num
from ketaweight.pipelines.results import MechanismsResults, SimulationTruth
from ketaweight.core import figures as fg
from ketaweight.report.blocks import NOT_ANALYSED, ci_text, data_label, rows_forest, rows_table, table
from ketaweight.report.collect import RunResults
from ketaweight.study.labels import label as column_label


def mechanisms_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "three-mechanisms", "title": "The three mechanisms: appetite, metabolism, mood → activity",
           "paragraphs": [], "tables": [], "figures": []}
    doc = run.mechanisms
    if doc is None:
        sec["paragraphs"].append("Mediation analysis: " + NOT_ANALYSED)
    elif doc.results.mediation is None:
        reason = doc.results.not_estimable.get("mediation", "no reason recorded")
        sec["paragraphs"].append(f"Mediation could not be estimated in this run: {reason}.")
    else:
        res: MechanismsResults = doc.results
        med = res.mediation
        title, rows = "Effect carried by each measured pathway (interventional mediation, g-computation)", mediation_rows(res)
        by_pathway: dict[str, list[str]] = {}
        for m in med.diagnostics["mediators"]:
            by_pathway.setdefault(m["pathway"], []).append(column_label(m["column"]))
        measured = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in by_pathway.items())
        sec["paragraphs"].append(f"Each pathway's effect is what shifting its measured mediators ({measured}) to their "
                                 "distribution under treatment would do; what no measured mediator captures — or "
                                 "captures only through noisy records — stays in the direct remainder. The estimates "
                                 "rest on these assumptions:")
        left_out = {k: v for k, v in res.not_estimable.items() if k.startswith("mediation pathway")}
        sec["paragraphs"].extend(f"Not estimable — {k}: {v}." for k, v in left_out.items())
        noisy = {k: v for k, v in res.not_estimable.items() if k.startswith("attribution of pathway")}
        sec["paragraphs"].extend(f"Not attributable — {k.removeprefix('attribution of ')}: {v}." for k, v in noisy.items())
        cal = med.diagnostics.get("calibration")
        if cal:
            sec["paragraphs"].append(_calibration_text(cal))
        balance = med.diagnostics.get("energy_balance")
        if balance:
            sec["paragraphs"].append(_energy_balance_text(balance))
        sec["paragraphs"].extend(f"• {a}" for a in med.assumptions)
        sec["paragraphs"].extend(f"Warning: {w}" for w in med.warnings)
        sec["tables"].append(rows_table(rows, "kg", data_label(doc), title, digits=3))
        sec["figures"].append(rows_forest(rows, "kg", data_label(doc), title))
    truth = run.simulation_truth
    if truth is not None:
        sec["tables"].append(table("What each pathway truly carries — simulator truth (known only in simulation)",
                                    ["pathway", "true average effect (kg)"],
                                    [[k, fmt_num(v.ate, 3)] for k, v in truth.pathways_kg.items()]))
    return sec


def dose_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "dose-and-variability", "title": "Dose, frequency, duration and individual variability",
           "paragraphs": [], "tables": [], "figures": []}
    doc = run.mechanisms
    if doc is None:
        sec["paragraphs"].append(f"Dose-response, subgroup effects and per-patient effects: {NOT_ANALYSED}")
    else:
        res: MechanismsResults = doc.results
        label = data_label(doc)
        reference = _no_course_reference(run)
        sec["paragraphs"].append(
            "Dose-response among treated patients: marginal structural models (stabilized generalized-propensity "
            "weights) give the mean weight change at 12 weeks if every treated patient had received a given exposure, "
            "E[Y^a], over the 5th–95th percentile of the exposures seen. These curves are mean changes, not effects: "
            "patients change weight without ketamine too. "
            + (f"The dashed line is the same patients' estimated mean change with no course ({fmt_num(reference)} kg, "
               "g-formula): the effect of an exposure is the distance between the curve and that line. "
               if reference is not None else "No no-course reference was estimated in this run, so read only the "
               "curves' shape. ")
            + "The curves' slopes are the gradient.")
        for c in curves(res):
            pts = c.curve
            name = column_label(c.exposure)
            sec["figures"].append(fg.curve_plot(
                [p.exposure for p in pts], [p.estimate for p in pts], [p.ci_low for p in pts], [p.ci_high for p in pts],
                xlabel=name, ylabel="mean weight change (kg)", reference=reference,
                reference_label="same patients, no course",
                alt=f"Dose-response curve: mean weight change at 12 weeks by {name} (MSM, 95% band)"
                    + (f" against the same patients' mean change with no course, {fmt_num(reference)} kg (dashed)"
                       if reference is not None else "") + f" ({label})"))
        sec["tables"].append(rows_table(gradient_rows(res), "kg per unit", label, "Dose-response slopes", digits=3))
        title, rows = "Effects by subgroup and by route (heterogeneity)", subgroup_rows(res)
        sec["tables"].append(rows_table(rows, "kg", label, title))
        sec["figures"].append(rows_forest(rows, "kg", label, title))
        het = res.heterogeneity
        sec["tables"].append(table(f"Tests of effect modification — {label}", ["modifier", "χ²", "df", "p", "p (Holm)"],
                                    [[column_label(m.modifier), f"{m.chi2:.2f}", m.df, f"{m.p_value:.3f}", f"{m.p_holm:.3f}"]
                                     for m in het.subgroups]))
        ind = het.individual.distribution
        pr, cal = ind["predicted"], ind["calibration"]
        sec["paragraphs"].append(
            f"Per-patient effects ({ind['method']}; {label}): predicted effects have SD {pr['sd']:.2f} kg, 90% between "
            f"{fmt_num(pr['p05'])} and {fmt_num(pr['p95'])} kg; {100 * ind['share_predicted_below_threshold']:.1f}% "
            f"are predicted to lose more than {abs(ind['threshold']):g} kg. Calibration slope {cal['blp_slope']:.2f} "
            f"(95% CI {cal['blp_slope_ci'][0]:.2f} to {cal['blp_slope_ci'][1]:.2f}). "
            + " ".join(t[0].upper() + t[1:].rstrip(".") + "." for t in (cal.get("reading"), ind.get("caveat")) if t))
        spread = ind.get("spread")
        if spread:
            lo, hi = spread["sd_calibrated_ci"]
            sec["paragraphs"].append(
                f"Spread of individual effects that baseline traits predict (calibrated: |BLP slope| × SD of the "
                f"predictions): SD {spread['sd_calibrated']:.2f} kg (95% CI {lo:.2f} to {hi:.2f}); the predictions' own "
                f"SD, {spread['sd_predicted']:.2f} kg, mixes that spread with estimation noise.")
        if het.search is not None:
            found = ", ".join(column_label(c) for c in het.search.found) or "none"
            sec["paragraphs"].append(f"Effect modifiers searched over the whole covariate catalogue "
                                     f"({len(het.search.tests)} candidates; Holm-adjusted p < {het.search.alpha:g}): "
                                     f"found {found}.")
            if het.found:
                sec["tables"].append(rows_table(found_rows(res), "kg", label,
                                                "Effects within the levels of the modifiers the search found"))
        sec["tables"].append(table(f"Calibration of predicted per-patient effects by quintile — {label}",
                                   ["quintile", "mean predicted (kg)", "doubly robust estimate (kg)", "95% CI", "n"],
                                   [[q["group"], fmt_num(q["mean_predicted"]), fmt_num(q["dr_estimate"]),
                                     ci_text(q["ci_low"], q["ci_high"]), mask_count(q["n"])]
                                    for q in cal["by_quintile"]]))
    spread = _spread_figure(doc, run.simulation_truth)
    if spread is not None:
        sec["figures"].append(spread)
    truth = run.simulation_truth
    if truth is not None:
        ind = truth.individual_effect_kg
        sec["paragraphs"].append(
            f"Individual variability in the simulated patients (simulator truth, known only in simulation): "
            f"each patient's own effect has SD {ind['sd']:.2f} kg; 90% of patients lie between "
            f"{fmt_num(ind['p05'])} and {fmt_num(ind['p95'])} kg (median {fmt_num(ind['p50'])} kg); "
            f"{100 * ind['share_losing_more_than_1kg']:.1f}% lose more than 1 kg because of the course.")
    return sec


def _calibration_text(cal: dict[str, Any]) -> str:
    """The mediators' measurement-error correction in words (which mediator, on which reference column)."""
    pairs = ", ".join(f"{column_label(m)} on {column_label(r)}" for m, r in cal.get("reference_columns", {}).items())
    return (f"Measurement error: the consumer-grade mediators were regression-calibrated on the validation substudy "
            f"({pairs}); the calibration is refitted in every bootstrap replicate, so the intervals include the "
            f"substudy's own uncertainty.")


def _energy_balance_text(balance: dict[str, Any]) -> str:
    """The energy-balance outcome model in words: the energy mediators with their factors, and the fitted
    kcal-to-kg coefficient (kg of weight change per kcal/d of balance)."""
    terms = ", ".join(f"{column_label(m)} × {factor:+g}" for m, factor in balance["factors_kcal_per_unit"].items())
    others = ", ".join(column_label(m) for m in balance.get("other_mediators", ()))
    return (f"Outcome model: the energy balance — weight follows stored energy, one kcal-to-kg coefficient for "
            f"{terms} (kcal/day; intake counts 0.76 after the thermic effect of feeding and adaptive thermogenesis), "
            f"fitted at {fmt_num(balance['kg_per_kcal_per_day'], 4)} kg per kcal/day"
            + (f"; {others} act on weight only through these." if others else "."))


def _no_course_reference(run: RunResults) -> float | None:
    """The treated patients' estimated mean outcome with no course (g-formula), kg; None if not estimated."""
    std = run.study.analyses["outcome_change"].estimate("standardization")
    value = (std.diagnostics.get("potential_outcome_means_treated") or {}).get("untreated") if std else None
    return value if isinstance(value, (int, float)) and value == value else None


def _spread_figure(mechanisms: ResultsFile | None, truth: SimulationTruth | None) -> fg.Figure | None:
    """Per-patient effects, median with 5th–95th percentile: predicted (DR-learner) and true (simulator)."""
    rows, sources = [], []
    if mechanisms is not None:
        pr = mechanisms.results.heterogeneity.individual.distribution["predicted"]
        rows.append(("predicted (DR-learner)", pr["p50"], pr["p05"], pr["p95"]))
        sources.append(f"predicted from {data_label(mechanisms)}")
    if truth is not None:
        t = truth.individual_effect_kg
        rows.append(("true (simulator)", t["p50"], t["p05"], t["p95"]))
        sources.append("true: simulator truth")
    if not rows:
        return None
    labels, mid, lo, hi = (list(x) for x in zip(*rows, strict=True))
    return fg.forest_plot(labels, mid, lo, hi, unit="per-patient effect on weight (kg): median, 5th–95th percentile",
                          alt=f"Spread of per-patient effects, median with 5th to 95th percentile ({'; '.join(sources)})")

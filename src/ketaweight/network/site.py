"""One site of a network: run the study on the site's store and write its aggregate-only bundle.

``run_site(store, study, "A", "site-A.zip")`` emulates the study exactly as ``ketaweight analyze``
does (:func:`ketaweight.pipelines.network_site.site_data`), estimates every negative control and
its injected positive controls with the study's own AIPW (:mod:`ketaweight.network.estimation`,
:mod:`ketaweight.network.controls`), adds the empirical-likelihood profile of the primary
estimate, calibrates it with the site's own controls (shown to the site, recomputed by the
coordinating centre), and writes the bundle through the privacy gate of
:mod:`ketaweight.network.bundle`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.runner import default_estimators
from ketaweight.core.errors import InputError, Location
from ketaweight.core.outputs import check_file_target
from ketaweight.core.privacy import MIN_CELL_COUNT, mask_counts, masked_or_exact
from ketaweight.network.bundle import FORMAT_VERSION, study_hash, write_bundle
from ketaweight.network.calibration import CalibratedEstimate, Controls, calibrate
from ketaweight.network.controls import design_controls, true_effect
from ketaweight.network.estimation import aipw_many
from ketaweight.network.likelihood import NormalLikelihood, empirical_likelihood_profile
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.pipelines.network_site import SiteData, site_data
from ketaweight.store.store import Store
from ketaweight.study.spec import Study, load_study

OUTCOME = "outcome_change"
PRIMARY = "aipw"
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class SiteRun:
    """What a site computed: the bundle's ``site.json`` content, the site's own calibration, and
    where the bundle was written (None when not written)."""

    results: dict[str, Any]
    calibration: CalibratedEstimate
    path: Path | None = None


def _primary_estimator(study: Study) -> AIPW:
    a = study.analysis
    problems = []
    if PRIMARY not in a.methods:
        problems.append((Location("study", column="analysis.methods"), f"a network study needs '{PRIMARY}' among the methods"))
    if a.variance != "sandwich":
        problems.append((Location("study", column="analysis.variance"), "a network study uses the sandwich variance: the "
                                                                        "outcome and its controls must be estimated alike"))
    if not study.network.negative_controls:
        problems.append((Location("study", column="network.negative_controls"), "no negative controls named; calibration "
                                                                                  "needs them (e.g. ['control_*'])"))
    if problems:
        raise InputError(problems)
    (est,) = default_estimators(methods=(PRIMARY,), variance=a.variance, n_bootstrap=a.n_bootstrap, seed=a.seed,
                                on_failure=a.on_failure)
    assert isinstance(est, AIPW)
    return est


def site_results(data: SiteData, site: str, *, leave_one_out: bool = True) -> tuple[dict[str, Any], CalibratedEstimate]:
    """The ``site.json`` content and the site's own calibration (with its leave-one-out check unless
    ``leave_one_out`` is False), from the emulated study."""
    if not SITE_NAME.match(site):
        raise InputError([(Location("site", column=site), "a site name is 1-64 letters, digits, '.', '_' or '-', "
                                                          "starting with a letter or digit")])
    study = data.study
    estimator = _primary_estimator(study)
    spec = analysis_spec(study, OUTCOME)
    primary = next(r for r in data.results.results[OUTCOME] if r.method == PRIMARY)
    d = primary.diagnostics
    small = [k for k in ("n_treated", "n_control") if 0 <= int(d[k]) < MIN_CELL_COUNT]
    if small:
        raise InputError([(Location(f"site {site}", column=k), f"fewer than {MIN_CELL_COUNT} patients: a bundle would "
                                                               "disclose a small count; this site cannot join") for k in small])
    plan = design_controls(data.table, outcome=OUTCOME, treatment="treated", control_columns=data.control_columns,
                           kinds=data.control_kinds, effects=study.network.positive_control_effects)
    many = aipw_many(plan.table, spec, [OUTCOME, *(c.column for c in plan.controls)], estimator, pseudo_for=[OUTCOME])
    main = many.estimates[OUTCOME]
    if not math.isclose(main.estimate, primary.estimate, rel_tol=1e-9, abs_tol=1e-12):
        raise AssertionError(f"batch AIPW {main.estimate!r} differs from the study's AIPW {primary.estimate!r}")
    likelihood = (empirical_likelihood_profile(many.pseudo_outcomes[OUTCOME]) if spec.estimand == "ATE"
                  else NormalLikelihood(primary.estimate, primary.se))
    treated = plan.table["treated"].to_numpy(dtype=float)
    controls = []
    for c in plan.controls:
        e = many.estimates[c.column]
        controls.append({"name": c.name, "group": c.group, "delta": c.delta,
                         "true_effect": true_effect(c.delta, plan.profile, many.analysed, treated, spec.estimand),
                         "estimate": e.estimate * c.factor, "se": e.se * c.factor,
                         "n_observed": masked_or_exact(e.n_observed)})
    calibration = calibrate(primary.estimate, primary.se, Controls.of(
        [c["name"] for c in controls], [c["true_effect"] for c in controls], [c["estimate"] for c in controls],
        [c["se"] for c in controls], [c["group"] for c in controls]), ci_level=primary.ci_level,
        min_controls=study.network.min_controls, with_leave_one_out=leave_one_out)
    bal, ov, w = d.get("balance", {}), d.get("overlap", {}), d.get("weights", {})
    doc = {
        "format_version": FORMAT_VERSION, "site": site, "study_name": study.study.name, "study_hash": study_hash(study),
        "outcome": OUTCOME, "outcome_unit": data.results.cohort.outcome_unit, "estimand": spec.estimand,
        "outcome_sd_untreated": plan.outcome_sd_untreated,
        "provenance": {**data.provenance.to_dict(), "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "counts": mask_counts({k: int(d[k]) for k in ("n_analysed", "n_treated", "n_control", "n_observed_outcome")},
                              keys=frozenset({"n_analysed", "n_treated", "n_control", "n_observed_outcome"})),
        "primary": {
            "method": PRIMARY, "estimate": primary.estimate, "se": primary.se, "ci_low": primary.ci_low,
            "ci_high": primary.ci_high, "ci_level": primary.ci_level, "likelihood": likelihood.to_dict(),
            "max_abs_smd_unweighted": bal.get("max_abs_smd_unweighted"), "max_abs_smd_weighted": bal.get("max_abs_smd_weighted"),
            "share_outside_support": ov.get("share_outside_support"), "ess": w.get("ess"),
            "covariates": list(bal.get("covariates", [])), "smd_weighted": list(bal.get("smd_weighted", [])),
            "warnings": list(primary.warnings),
        },
        "estimates": {col: [{"method": r.method, "estimate": r.estimate, "se": r.se, "ci_low": r.ci_low,
                             "ci_high": r.ci_high, "n": masked_or_exact(r.n)} for r in rs]
                      for col, rs in data.results.results.items()},
        "controls": controls,
        "control_factors": plan.factors,
        "attrition": mask_counts([s.to_dict() for s in data.results.cohort.attrition]),
    }
    return doc, calibration


def bundle_site(data: SiteData, site: str, out: str | Path | None = None, *, leave_one_out: bool = True,
                replace: bool = False, on_stage: Callable[[str], None] = lambda text: None) -> SiteRun:
    """The site's results from its emulated study and, with ``out``, its bundle written there (an earlier
    bundle is replaced only with ``replace``)."""
    on_stage(f"estimating {len(data.control_kinds)} negative controls × "
             f"{1 + len(data.study.network.positive_control_effects)} effect sizes")
    doc, calibration = site_results(data, site, leave_one_out=leave_one_out)
    path = None
    if out is not None:
        on_stage("checking and writing the bundle")
        path = write_bundle(out, doc, data.study, patient_ids=data.table["patient_id"].astype(str), replace=replace)
    return SiteRun(doc, calibration, path)


def run_site(store: Store | str | Path, study: Study | str | Path, site: str, out: str | Path | None = None,
             *, replace: bool = False, on_stage: Callable[[str], None] = lambda text: None) -> SiteRun:
    """Run ``study`` at one site and, with ``out``, write its bundle there (see module docstring); the
    target is checked before any work (an earlier bundle is replaced only with ``replace``)."""
    if out is not None:
        check_file_target(out, replace=replace)
    study = study if isinstance(study, Study) else load_study(study)
    return bundle_site(site_data(store, study, on_stage), site, out, replace=replace, on_stage=on_stage)

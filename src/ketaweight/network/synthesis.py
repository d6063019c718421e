"""The coordinating centre: check that every bundle ran the same study, calibrate, pool, and say how
consistent and how replicated the answer is.

* **Same study**: one study hash for every bundle (every setting of the spec), one outcome and
  estimand, unique site names; a different ketaweight version is a warning.
* **Per site**: the primary estimate calibrated with the site's own controls
  (:func:`ketaweight.network.calibration.calibrate`).
* **Pooled, uncalibrated**: fixed effect, DerSimonian–Laird and the study's pooling (REML with
  Hartung–Knapp by default) side by side, with τ², I², Q and the prediction interval; and the
  Bayesian random-effects pooling of the sites' empirical-likelihood profiles
  (:mod:`ketaweight.network.bayes`).
* **Calibrated** (the network's answer), in two steps.  First each site's estimate is calibrated
  with its own controls and the calibrated estimates are pooled ("calibrate, then pool"): the error
  each database shows is removed where it arises, so bias at one site does not pose as
  heterogeneity.  Then every control, calibrated at each site by a model fitted without it
  (leave-one-group-out), is pooled across the sites in the same way, and the pooled estimate is
  calibrated again with these pooled calibrated controls: systematic error that the sites share
  survives the first step in the controls as it does in the outcome, and widens or shifts the
  answer; where there is none, the second step changes nothing.  Under Hartung–Knapp pooling every
  pooled SE enters calibration as SE·t/z (:func:`z_equivalent_se`), so the t reference of a
  few-site pooling is kept.  Pooling first and calibrating with the pooled raw controls (as OHDSI's
  LEGEND studies calibrate meta-analytic estimates) is shown beside it ("pool, then calibrate"): it
  keeps between-site differences in bias inside τ².
* **Replication and consistency** for the grade: how many sites' calibrated CIs exclude 0 in the
  pooled direction, I², τ and the prediction interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from ketaweight.causal.evalue import evalue_difference
from ketaweight.core.errors import InputError, KetaweightWarning, Location
from ketaweight.core.protocol import Count, InMemory, Real, Result
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_result
from ketaweight.core.summary import Summary
from ketaweight.network.bayes import BayesianMetaAnalysis, bayesian_meta_analysis
from ketaweight.network.bundle import SiteBundle, read_bundle
from ketaweight.network.calibration import CalibratedEstimate, CalibrationWarning, Controls, calibrate
from ketaweight.network.likelihood import likelihood_from_dict
from ketaweight.network.meta import MetaAnalysis, meta_analyze


class NetworkWarning(KetaweightWarning):
    """Bundles from different ketaweight versions, controls missing at some sites, a network of one site."""


@dataclass(frozen=True)
class SiteSummary(Result):
    """One site's primary estimate before and after calibration with its own controls (outcome units)."""

    site: str
    n: Count
    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    calibration: CalibratedEstimate
    provenance: str
    balance: dict[str, Real | None]
    controls: list[dict[str, Any]] = field(repr=False)


@dataclass(frozen=True)
class PooledControl(Result):
    """One control pooled across the sites that have it, as the outcome is pooled (outcome units)."""

    name: str
    group: str
    true_effect: Real
    estimate: Real
    se: Real  # z-equivalent under Hartung–Knapp (:func:`z_equivalent_se`)
    k: int
    tau2: Real


@dataclass(frozen=True)
class Replication(Result):
    """How many sites' CIs (raw and calibrated) exclude 0 in the pooled direction."""

    k: int
    sites_excluding_zero: int
    sites_excluding_zero_calibrated: int
    sites_same_direction: int
    direction: str  # "loss" or "gain"


@dataclass(frozen=True)
class Consistency(Result):
    """Heterogeneity of the calibrated site estimates (and of the raw ones), outcome units; I² in percent."""

    i2: Real
    tau: Real
    tau2: Real
    q: Real
    q_p: Real | None
    prediction_low: Real | None
    prediction_high: Real | None
    k: int
    i2_uncalibrated: Real
    tau_uncalibrated: Real


@dataclass(frozen=True)
class NetworkResult(Result):
    """A ``kind = "network"`` file: everything the coordinating centre computed (see module docstring)."""

    kind: ClassVar[str] = "network"

    study_name: str
    study_hash: str
    outcome_unit: str
    estimand: str
    sites: tuple[SiteSummary, ...]
    pooled: dict[str, MetaAnalysis]
    primary_pooling: str
    bayesian: BayesianMetaAnalysis
    pooled_controls: tuple[PooledControl, ...]
    pool_then_calibrate: CalibratedEstimate
    calibrate_then_pool: MetaAnalysis
    pooled_calibrated_controls: tuple[PooledControl, ...]
    calibrated: CalibratedEstimate
    sensitivity: dict[str, Any]
    replication: Replication
    consistency: Consistency
    warnings: tuple[str, ...] = ()
    provenance: InMemory = field(default=None, repr=False, compare=False)  # Provenance, written in the envelope

    @property
    def primary(self) -> MetaAnalysis:
        return self.pooled[self.primary_pooling]

    def summary(self) -> Summary:
        def row(label: str, c: CalibratedEstimate) -> tuple[str, str, str]:
            cal = ("unbounded" if c.calibrated_ci_low is None or c.calibrated_ci_high is None else
                   f"{c.calibrated_estimate:.3f} ({c.calibrated_ci_low:.3f}, {c.calibrated_ci_high:.3f})")
            return label, f"{c.estimate:.3f} ({c.ci_low:.3f}, {c.ci_high:.3f})", cal

        rows = [row(s.site, s.calibration) for s in self.sites] + [row("network (calibrated)", self.calibrated)]
        return Summary(f"{self.study_name}: {len(self.sites)} sites ({self.outcome_unit})",
                       ("site", "estimate (95% CI)", "calibrated (95% CI)"), tuple(rows), self.warnings)


def _warn(message: str, log: list[str]) -> None:
    log.append(message)
    warnings.warn(message, NetworkWarning, stacklevel=3)


def _check_same_study(bundles: Sequence[SiteBundle], log: list[str]) -> None:
    problems = []
    first = bundles[0]
    for b in bundles[1:]:
        if b.results.study_hash != first.results.study_hash:
            problems.append((Location(str(b.path), column="study_hash"),
                             f"ran a different study ('{b.results.study_name}', hash {b.results.study_hash[:12]}…) than "
                             f"{first.path.name} ('{first.results.study_name}', {first.results.study_hash[:12]}…); every "
                             "site must run the same study file"))
    names = [b.site for b in bundles]
    problems += [(Location(str(b.path), column="site"), f"site name {b.site!r} appears more than once")
                 for b in bundles if names.count(b.site) > 1]
    if problems:
        raise InputError(problems)
    versions = sorted({b.manifest.get("ketaweight_version") for b in bundles})
    if len(versions) > 1:
        _warn(f"bundles come from different ketaweight versions ({', '.join(map(str, versions))}); estimates may "
              "differ in ways the study hash cannot see", log)


def _controls(b: SiteBundle) -> Controls:
    c = b.results.controls
    return Controls.of([r.name for r in c], [r.true_effect for r in c],
                       [float("nan") if r.estimate is None else r.estimate for r in c],
                       [float("nan") if r.se is None else r.se for r in c], [r.group for r in c])


def _pool(b: Sequence[float], s: Sequence[float], study: Any, labels: Sequence[str]) -> MetaAnalysis:
    n = study.network
    return meta_analyze(b, s, method=n.pooling, hartung_knapp=n.hartung_knapp, hartung_knapp_floor=n.hartung_knapp_floor,
                        labels=labels)


def z_equivalent_se(m: MetaAnalysis) -> float:
    """The SE whose normal interval is the pooled one: SE·t/z under Hartung–Knapp (t on k − 1 df), else SE.

    Calibration works on normal intervals; this carries the t reference of a Hartung–Knapp pooling
    (and its width with few sites) into the calibrated interval instead of dropping it.
    """
    if m.df is None:
        return m.se
    level = m.ci_level
    return m.se * float(stats.t.ppf(0.5 + level / 2, m.df) / stats.norm.ppf(0.5 + level / 2))


def synthesize(bundles: Sequence[SiteBundle | str | Path], *, leave_one_out: bool = True) -> NetworkResult:
    """Check, calibrate and pool site bundles (paths or read bundles); see the module docstring.

    Each site's calibration always carries its leave-one-out check (its calibrated controls feed the
    answer); ``leave_one_out=False`` skips the checks of the two pooled calibrations (validation runs).
    """
    if not bundles:
        raise InputError([(Location("network"), "no bundles given")])
    read = [b if isinstance(b, SiteBundle) else read_bundle(b) for b in bundles]
    log: list[str] = []
    _check_same_study(read, log)
    if len(read) < 2:
        _warn("a network of one site: nothing is pooled or replicated", log)
    study = read[0].study
    net = study.network
    labels = [b.site for b in read]
    sites: list[SiteSummary] = []
    with warnings.catch_warnings():  # calibration warnings are collected in each result and logged below
        warnings.simplefilter("ignore", CalibrationWarning)
        for b in read:
            p = b.results.primary
            cal = calibrate(p.estimate, p.se, _controls(b), ci_level=p.ci_level, min_controls=net.min_controls)
            balance = {"max_abs_smd_weighted": p.max_abs_smd_weighted, "share_outside_support": p.share_outside_support,
                       "ess": p.ess}
            sites.append(SiteSummary(b.site, b.results.counts.n_analysed, p.estimate, p.se, p.ci_low, p.ci_high, cal,
                                     b.results.provenance.get("label", ""), balance,
                                     [r.to_dict() for r in b.results.controls]))
    log += [f"site {s.site}: {w}" for s in sites for w in s.calibration.warnings]
    est = np.array([s.estimate for s in sites])
    se = np.array([s.se for s in sites])
    pooled = {"fixed": meta_analyze(est, se, method="fixed", labels=labels),
              "dl": meta_analyze(est, se, method="dl", labels=labels)}
    key = net.pooling + ("+hk" if net.hartung_knapp else "")
    pooled[key] = _pool(est, se, study, labels)
    bayes = bayesian_meta_analysis([likelihood_from_dict(b.results.primary.likelihood) for b in read],
                                   prior_sd_mu=net.prior_sd_mu, prior_sd_tau=net.prior_sd_tau)

    primary = pooled[key]

    def pooled_controls_of(by_name: dict[str, list[tuple[str, float, float, float, str]]]) -> tuple[PooledControl, ...]:
        """Each control (site, estimate, se, true effect, group) pooled across its sites as the outcome is."""
        out = []
        for name, rows in by_name.items():
            m = _pool([r[1] for r in rows], [r[2] for r in rows], study, [r[0] for r in rows])
            out.append(PooledControl(name, rows[0][4], float(np.mean([r[3] for r in rows])), m.estimate,
                                     z_equivalent_se(m), m.k, m.tau2))
        return tuple(out)

    def calibrate_with(estimate: float, se: float, controls: Sequence[PooledControl]) -> CalibratedEstimate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            return calibrate(estimate, se, Controls.of([c.name for c in controls], [c.true_effect for c in controls],
                                                       [c.estimate for c in controls], [c.se for c in controls],
                                                       [c.group for c in controls]),
                             ci_level=primary.ci_level, min_controls=net.min_controls, with_leave_one_out=leave_one_out)

    # (a) pool, then calibrate with the pooled raw controls (OHDSI LEGEND)
    raw: dict[str, list[tuple[str, float, float, float, str]]] = {}
    for b in read:
        for r in b.results.controls:
            if r.estimate is not None and r.se is not None and r.se > 0:
                raw.setdefault(r.name, []).append((b.site, r.estimate, r.se, r.true_effect, r.group))
    partial = sorted(n for n, rows in raw.items() if len(rows) < len(read))
    if partial:
        _warn(f"{len(partial)} control(s) missing at some sites are pooled over the sites that have them: "
              f"{', '.join(partial[:8])}{' …' if len(partial) > 8 else ''}", log)
    pooled_controls = pooled_controls_of(raw)
    pool_then_calibrate = calibrate_with(primary.estimate, z_equivalent_se(primary), pooled_controls)
    # (b) calibrate each site with its own controls, then pool
    ok = [s for s in sites if s.calibration.calibrated_se is not None]
    then_pool = _pool([s.calibration.calibrated_estimate for s in ok], [s.calibration.calibrated_se for s in ok],
                      study, [s.site for s in ok])
    # (c) the answer: (b) calibrated again with the pooled calibrated controls (each site's controls calibrated
    #     leave-one-group-out), which keeps the systematic error the sites share
    cal: dict[str, list[tuple[str, float, float, float, str]]] = {}
    for s in ok:
        for row in s.calibration.loo.rows if s.calibration.loo else ():
            if row.get("calibrated_se"):
                cal.setdefault(row["name"], []).append((s.site, row["calibrated_estimate"], row["calibrated_se"],
                                                        row["true_effect"], row["group"]))
    pooled_calibrated_controls = pooled_controls_of(cal)
    calibrated = calibrate_with(then_pool.estimate, z_equivalent_se(then_pool), pooled_calibrated_controls)
    log += [f"pooled: {w}" for w in calibrated.warnings]
    direction = -1.0 if (calibrated.calibrated_estimate or primary.estimate) < 0 else 1.0

    def excludes_zero_same_way(lo: float | None, hi: float | None) -> bool:
        return lo is not None and hi is not None and (hi < 0 if direction < 0 else lo > 0)

    replication = Replication(
        k=len(sites),
        sites_excluding_zero=sum(excludes_zero_same_way(s.ci_low, s.ci_high) for s in sites),
        sites_excluding_zero_calibrated=sum(excludes_zero_same_way(s.calibration.calibrated_ci_low,
                                                                   s.calibration.calibrated_ci_high) for s in sites),
        sites_same_direction=int(sum(np.sign(s.estimate) == direction for s in sites)),
        direction="loss" if direction < 0 else "gain",
    )
    consistency = Consistency(then_pool.i2, then_pool.tau, then_pool.tau2, then_pool.q, then_pool.q_p,
                              then_pool.prediction_low, then_pool.prediction_high, then_pool.k, primary.i2, primary.tau)
    sd = float(np.mean([b.results.outcome_sd_untreated for b in read]))
    sensitivity = {"outcome_sd_untreated": sd}
    if calibrated.calibrated_ci_low is not None:
        sensitivity.update(evalue_difference(calibrated.calibrated_estimate, calibrated.calibrated_ci_low,
                                             calibrated.calibrated_ci_high, sd))
    provenance = Provenance.combine([Provenance.from_dict(b.results.provenance) for b in read])
    assert provenance is not None
    r0 = read[0].results
    return NetworkResult(r0.study_name, r0.study_hash, r0.outcome_unit, r0.estimand, tuple(sites), pooled, key, bayes,
                         pooled_controls, pool_then_calibrate, then_pool, pooled_calibrated_controls, calibrated,
                         sensitivity, replication, consistency, tuple(log), provenance)


def write_network(result: NetworkResult, out_dir: str | Path, *, replace: bool = False) -> Path:
    """``out_dir/network.json`` (results envelope, ``kind = "network"``); an earlier one is replaced only
    with ``replace``, a file ketaweight did not write never (:func:`ketaweight.core.outputs.check_file_target`)."""
    return write_result(Path(out_dir) / "network.json", result, result.provenance, replace=replace,
                        study=result.study_name, study_hash=result.study_hash, sites=[s.site for s in result.sites])

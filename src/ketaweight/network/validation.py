"""Does calibration work across a network?  Coverage and type-I error over simulated networks.

Each replicate is a network of ``sites`` simulated clinics (:func:`ketaweight.sources.simulator.network.network_sites`:
different sizes, case mix, confounding strength and measurement quality; the last site with an
unmeasured confounder), run exactly as users run it: every site's store (in memory), the shipped
study with its negative controls, the site bundle written and read back through the privacy gate,
and the synthesis.  The truth is the mean over the sites of the true effect among each site's
eligible patients (what random-effects pooling targets; exactly 0 in the ``null`` scenario).

Reported per interval (fixed effect and the study's pooling uncalibrated, Bayesian, the calibrated
network estimate, calibrate-then-pool, and the biased site alone): coverage of the truth with its
Monte-Carlo SE, the share of calibrated or uncalibrated p-values below 0.05 in the null scenario
(type-I error), mean width and mean error.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from ketaweight.core.protocol import Real, Result
from ketaweight.core.errors import KetaweightWarning
from ketaweight.core.outputs import MARKDOWN_GENERATOR, check_file_target
from ketaweight.core.replicates import run_replicates
from ketaweight.core.results import write_result, write_text_atomic
from ketaweight.network.site import bundle_site
from ketaweight.network.synthesis import synthesize
from ketaweight.pipelines.network_simulation import simulated_site_data
from ketaweight.pipelines.validation import replicate_checkpoint
from ketaweight.sources.simulator import load_scenario
from ketaweight.sources.simulator.network import network_sites
from ketaweight.study.spec import load_study

STUDY = "ketamine-weight"


@dataclass(frozen=True)
class NetworkValidationRow(Result):
    scenario: str
    interval: str
    coverage: Real
    coverage_mcse: Real
    type_i: Real | None
    mean_width: Real
    mean_error: Real
    networks: int


def _p(est: float, se: float) -> float:
    return float(2 * stats.norm.sf(abs(est / se)))


def one_network(args: tuple[str, int, int, int]) -> dict[str, Any]:
    """Simulate, run every site and synthesize one network; the intervals and the truth."""
    scenario, sites, patients, seed = args
    study = load_study(STUDY)
    specs = network_sites(load_scenario(scenario), sites, patients, seed)
    truths, paths = [], []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        for spec in specs:
            with_truth = spec.scenario.drug_affects_weight
            res, data = simulated_site_data(spec, study, truth=with_truth)
            paths.append(bundle_site(data, spec.name, Path(tmp) / f"{spec.name}.zip", leave_one_out=False).path)
            if with_truth:
                effect = res.patient_truth.to_pandas().set_index("patient_id")["effect_kg"]
                truths.append(float(effect.loc[data.table["patient_id"]].mean()))
            else:
                truths.append(0.0)
        r = synthesize(paths, leave_one_out=False)
    truth = float(np.mean(truths))
    fe, prim, b, c, tp, lg = r.pooled["fixed"], r.primary, r.bayesian, r.calibrated, r.calibrate_then_pool, r.pool_then_calibrate
    biased = r.sites[-1]
    out = {
        "truth": truth, "biased_truth": truths[-1],
        "fixed, uncalibrated": (fe.ci_low, fe.ci_high, fe.p_value, fe.estimate),
        f"{r.primary_pooling}, uncalibrated": (prim.ci_low, prim.ci_high, prim.p_value, prim.estimate),
        "bayesian, uncalibrated": (b.mu_ci_low, b.mu_ci_high, 2 * min(b.prob_below_zero, 1 - b.prob_below_zero), b.mu),
        "pool, then calibrate (LEGEND)": (lg.calibrated_ci_low, lg.calibrated_ci_high, lg.calibrated_p, lg.calibrated_estimate),
        "calibrate, then pool": (tp.ci_low, tp.ci_high, tp.p_value, tp.estimate),
        "calibrated network estimate": (c.calibrated_ci_low, c.calibrated_ci_high, c.calibrated_p, c.calibrated_estimate),
        "biased site, uncalibrated": (biased.ci_low, biased.ci_high, _p(biased.estimate, biased.se), biased.estimate),
        "biased site, calibrated": (biased.calibration.calibrated_ci_low, biased.calibration.calibrated_ci_high,
                                    biased.calibration.calibrated_p, biased.calibration.calibrated_estimate),
    }
    return out


def _network_replicate(shared: tuple[str, int, int], r: int, seed: int) -> dict[str, Any]:
    """Network ``r`` of :func:`validate_network` (the signature of :func:`~ketaweight.core.replicates.run_replicates`)."""
    return one_network((*shared, int(seed)))


def validate_network(scenarios: Sequence[str] = ("null", "article"), *, networks: int = 100, sites: int = 5,
                     patients: int = 5000, seed: int = 2015, workers: int | None = None,
                     on_network: Callable[[int], None] | None = None, scheduler: Any = None,
                     checkpoint: Path | None = None) -> list[NetworkValidationRow]:
    """Coverage and type-I error over ``networks`` simulated networks per scenario (see module docstring).

    Networks run where ``scheduler`` says (:func:`ketaweight.core.replicates.run_replicates`; ``None``:
    ``workers`` local processes), each with its own fixed seed, so the rows do not depend on it; with
    ``checkpoint`` finished networks are kept per scenario and a rerun resumes from them."""
    seeds = np.random.SeedSequence(seed).generate_state(len(scenarios) * networks)
    rows: list[NetworkValidationRow] = []
    for k, scenario in enumerate(scenarios):
        reps = run_replicates(_network_replicate, [int(x) for x in seeds[k * networks: (k + 1) * networks]],
                              shared=(scenario, sites, patients), scheduler=scheduler,
                              workers=workers or os.cpu_count() or 1, on_replicate=on_network,
                              checkpoint=replicate_checkpoint(checkpoint, "network-validation", scenario, seed=seed,
                                                              sites=sites, patients=patients, study=STUDY),
                              name=f"network-validate-{scenario}")
        null = not load_scenario(scenario).drug_affects_weight
        for interval in (key for key in reps[0] if key not in ("truth", "biased_truth")):
            t = np.array([r["biased_truth"] if interval.startswith("biased") else r["truth"] for r in reps])
            lo = np.array([np.nan if r[interval][0] is None else r[interval][0] for r in reps], dtype=float)
            hi = np.array([np.nan if r[interval][1] is None else r[interval][1] for r in reps], dtype=float)
            p = np.array([r[interval][2] for r in reps], dtype=float)
            est = np.array([np.nan if r[interval][3] is None else r[interval][3] for r in reps], dtype=float)
            cover = float(np.mean((lo <= t) & (t <= hi)))  # an unbounded (None) interval counts as not covering
            rows.append(NetworkValidationRow(scenario, interval, cover, math.sqrt(cover * (1 - cover) / len(reps)),
                                             float(np.mean(p < 0.05)) if null else None, float(np.nanmean(hi - lo)),
                                             float(np.nanmean(est - t)), len(reps)))
    return rows


def as_markdown(rows: list[NetworkValidationRow], *, sites: int, patients: int) -> str:
    """The table for docs/validation.md."""
    lines = ["| scenario | interval | coverage (MCSE) | type-I error (p < 0.05) | mean width, kg | mean error, kg |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        ti = "—" if r.type_i is None else f"{100 * r.type_i:.1f}%"
        lines.append(f"| {r.scenario} | {r.interval} | {100 * r.coverage:.1f}% ({100 * r.coverage_mcse:.1f}) | {ti} | "
                     f"{r.mean_width:.3f} | {r.mean_error:+.3f} |")
    lines.append("")
    lines.append(f"{rows[0].networks if rows else 0} simulated networks of {sites} sites × about {patients:,} patients "
                 "per scenario; the last site of each network has an unmeasured confounder.")
    return "\n".join(lines)


@dataclass(frozen=True)
class NetworkValidation(Result):
    """A ``kind = "network_validation"`` file: coverage and type-I error of pooled intervals over simulated networks."""

    kind: ClassVar[str] = "network_validation"

    networks: int
    sites: int
    patients: int
    seed: int
    rows: tuple[NetworkValidationRow, ...]


def write_network_validation(rows: list[NetworkValidationRow], out: Path, *, networks: int, sites: int, patients: int,
                             seed: int, replace: bool = False) -> tuple[Path, Path]:
    """``out/network-validation.json`` (``kind = "network_validation"``) and ``out/network-validation.md``;
    earlier ones are replaced only with ``replace`` (:func:`ketaweight.core.outputs.check_file_target`)."""
    json_path, md_path = out / "network-validation.json", out / "network-validation.md"
    for path in (json_path, md_path):
        check_file_target(path, replace=replace)
    j = write_result(json_path, NetworkValidation(networks, sites, patients, seed, tuple(rows)),
                     {"origin": "simulated", "synthetic": True, "source": "ketaweight simulator"}, replace=replace,
                     study=STUDY)
    m = write_text_atomic(md_path, MARKDOWN_GENERATOR + as_markdown(rows, sites=sites, patients=patients) + "\n")
    return j, m

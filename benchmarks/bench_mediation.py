"""Mediation benchmark: ketaweight's g-computation with bootstrap CIs vs statsmodels' Mediation.

Run: ``.venv/bin/python benchmarks/bench_mediation.py`` (prints the figures recorded by hand in
RESULTS.md, section "Mechanisms").

Data (n = 100,000, 10 covariates, seed 2026): X ~ N(0, I₁₀), P(A = 1 | X) = expit(−0.3 + Xβ);
single-mediator case M = 1 + 0.8·A + Xα + N(0, 1), Y = 0.5·A + 0.6·M + Xγ + N(0, 1)
(indirect effect 0.48, direct 0.5); multi-mediator case adds M2 = 0.5·M + 0.4·A + Xα₂ + N(0, 1)
(same pathway, after M) and M3 = −0.6·A + Xα₃ + N(0, 1) (second pathway) with Y gaining
0.3·M2 + 0.5·M3.

* ketaweight ``Mediation`` with 1000 bootstrap replicates, every model refitted per replicate;
  median of ``--repeats`` full runs.
* statsmodels ``stats.mediation.Mediation`` (single mediator only; Imai, Keele & Tingley 2010),
  timed on ``--peer-replicates`` replicates in both its modes — ``parametric`` (draws model
  parameters from their asymptotic normal, no refits: the default) and ``bootstrap`` (refits on
  resamples: the honest like-for-like peer) — and extrapolated linearly to 1000.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

import numpy as np
import pandas as pd
from bench_causal import machine  # benchmarks/ is on sys.path when this script runs
from scipy.special import expit

from ketaweight.mechanisms.mediation import Mediation, MediationSpec, Pathway

P = 10
COVARIATES = tuple(f"x{j}" for j in range(P))


def simulate(n: int, seed: int = 2026) -> pd.DataFrame:
    """The benchmark cohort (see module docstring)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, P))
    a = (rng.random(n) < expit(-0.3 + x @ rng.normal(scale=0.2, size=P))).astype(float)
    m = 1 + 0.8 * a + x @ rng.normal(scale=0.3, size=P) + rng.normal(size=n)
    m2 = 0.5 * m + 0.4 * a + x @ rng.normal(scale=0.3, size=P) + rng.normal(size=n)
    m3 = -0.6 * a + x @ rng.normal(scale=0.3, size=P) + rng.normal(size=n)
    gamma = rng.normal(scale=0.3, size=P)
    df = pd.DataFrame(x, columns=list(COVARIATES))
    df["A"], df["M"], df["M2"], df["M3"] = a, m, m2, m3
    df["Y"] = 0.5 * a + 0.6 * m + x @ gamma + rng.normal(size=n)
    df["Y3"] = 0.5 * a + 0.6 * m + 0.3 * m2 + 0.5 * m3 + x @ gamma + rng.normal(size=n)
    return df


def ours(df: pd.DataFrame, spec: MediationSpec, replicates: int, repeats: int) -> dict:
    times, res = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        res = Mediation(n_bootstrap=replicates, seed=1, interaction=False).fit(df, spec)
        times.append(time.perf_counter() - t)
    return {"times": times, "median": statistics.median(times), "result": res}


def statsmodels_peer(df: pd.DataFrame, reps: int, method: str) -> dict:
    import statsmodels.api as sm
    from statsmodels.stats.mediation import Mediation as SmMediation

    rhs = " + ".join(COVARIATES)
    outcome = sm.OLS.from_formula(f"Y ~ A + M + {rhs}", df)
    mediator = sm.OLS.from_formula(f"M ~ A + {rhs}", df)
    t = time.perf_counter()
    fit = SmMediation(outcome, mediator, "A", "M").fit(method=method, n_rep=reps)
    elapsed = time.perf_counter() - t
    table = fit.summary()
    return {"per_replicate": elapsed / reps, "replicates_timed": reps,
            "acme": float(table.loc["ACME (average)", "Estimate"]),
            "ci": (float(table.loc["ACME (average)", "Lower CI bound"]), float(table.loc["ACME (average)", "Upper CI bound"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--peer-replicates", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import statsmodels

    info = machine()
    load_before = os.getloadavg()
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {info['cpu']}, {info['cores']} cores; "
          f"load before {load_before}; python {info['python']}, numpy {info['numpy']}, BLAS {info['blas']}")
    df = simulate(args.n)
    single = MediationSpec(treatment="A", outcome="Y", covariates=COVARIATES, pathways=(Pathway("m", ("M",)),))
    multi = MediationSpec(treatment="A", outcome="Y3", covariates=COVARIATES,
                          pathways=(Pathway("p1", ("M", "M2")), Pathway("p2", ("M3",))))
    one = ours(df, single, args.replicates, args.repeats)
    r = one["result"]
    print(f"ketaweight, 1 mediator, n={args.n:,}, {args.replicates} bootstrap replicates: median {one['median']:.2f} s "
          f"(runs {[round(t, 2) for t in one['times']]}); indirect {r.pathways['m'].estimate:.4f} "
          f"({r.pathways['m'].ci_low:.4f}, {r.pathways['m'].ci_high:.4f}), direct {r.direct.estimate:.4f} (truth 0.48, 0.5)")
    three = ours(df, multi, args.replicates, args.repeats)
    r3 = three["result"]
    print(f"ketaweight, 3 mediators / 2 pathways: median {three['median']:.2f} s (runs {[round(t, 2) for t in three['times']]}); "
          + ", ".join(f"{e.estimand} {e.estimate:.4f} ({e.ci_low:.4f}, {e.ci_high:.4f})" for e in r3.effects))
    for method in ("bootstrap", "parametric"):
        peer = statsmodels_peer(df, args.peer_replicates, method)
        print(f"statsmodels {statsmodels.__version__} Mediation ({method}), 1 mediator: {peer['per_replicate'] * 1e3:.0f} ms/replicate "
              f"({peer['replicates_timed']} timed) → {peer['per_replicate'] * 1000:.0f} s per 1000 (extrapolated), "
              f"{peer['per_replicate'] * args.replicates / one['median']:.0f}× ours; ACME {peer['acme']:.4f} "
              f"(CI from {peer['replicates_timed']} replicates {peer['ci'][0]:.4f}, {peer['ci'][1]:.4f})")
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()

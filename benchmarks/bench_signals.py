"""Signals benchmark: EBGM on a 1,000,000-pair table (ketaweight vs vigipy GPS, side by side) and
ingesting one synthetic FAERS quarter (~400k reports, 1.8 M drug rows, 1.3 M reaction rows).

    .venv/bin/python benchmarks/bench_signals.py [--runs 3] [--vigipy-runs 1] [--skip-vigipy]
                                                 [--json benchmarks/results/signals.json]

What is timed
-------------
* ketaweight: ``fit_prior`` (multistart, exact full-data MLE with a convergence check) plus
  Qn, EBGM, EB05 and EB95 for **every** cell with n ≥ 1 — median of ``--runs`` runs.
* vigipy: ``gps(container, min_events=1)`` — its Nelder–Mead fit plus the same four scores
  for every cell (``convert`` is timed separately).  It is slow, so it runs ``--vigipy-runs``
  times (default once) and the script says so.
* Both fit the same cells (the table's non-zero cells; E from the table's margins).  The
  fitted priors are compared by log-likelihood under *both* zero-truncation definitions
  (:func:`ketaweight.signals.mgps.truncated_loglik`): vigipy maximises the mixture-truncated
  one, so that is the like-for-like comparison.
* Ingest: ``ingest_faers`` of one synthetic quarter into a fresh DuckDB file, each run in a
  fresh child process; wall time and the child's peak resident memory (``VmHWM``).

The machine is shared: the load average is printed before each timed section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine_info import cpu_model, load_average



def machine() -> dict:
    cpu = cpu_model()
    import numpy
    import scipy

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "platform": platform.platform(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def pair_table():
    from ketaweight.signals.synthetic import synthetic_pair_table

    df = synthetic_pair_table()
    n = df["count"].to_numpy(float)
    nd = df.groupby("drug", observed=True)["count"].transform("sum").to_numpy(float)
    ne = df.groupby("event", observed=True)["count"].transform("sum").to_numpy(float)
    e = nd * ne / n.sum()
    return df, n, e


def bench_ebgm(runs: int, vigipy_runs: int, skip_vigipy: bool) -> dict:
    from ketaweight.signals import mgps

    df, n, e = pair_table()
    out: dict = {"cells": int(n.size), "reports_total": int(n.sum())}
    print(f"\n== EBGM for all pairs: {n.size:,} drug–event cells with n ≥ 1 ==")
    times, fits = [], []
    for i in range(runs):
        print(f"  ketaweight run {i + 1}/{runs} (load {load_average()})", flush=True)
        t0 = time.perf_counter()
        fit = mgps.fit_prior(n, e, truncation="mixture")
        t_fit = time.perf_counter() - t0
        s = mgps.ebgm_scores(fit.prior, n, e)
        t_all = time.perf_counter() - t0
        times.append((t_fit, t_all))
        fits.append(fit)
        assert np.all(np.isfinite(s.eb05)) and np.all(s.eb05 <= s.eb95)
    fit = fits[-1]
    ours = {
        "fit_s_median": statistics.median(t[0] for t in times),
        "total_s_median": statistics.median(t[1] for t in times),
        "runs": runs, "all_total_s": [round(t[1], 3) for t in times],
        "prior": fit.prior.to_dict(), "converged": fit.converged, "newton_decrement": fit.newton_decrement,
        "loglik_mixture": mgps.truncated_loglik(fit.prior, n, e, truncation="mixture"),
        "loglik_component": mgps.truncated_loglik(fit.prior, n, e, truncation="component"),
    }
    t0 = time.perf_counter()
    fit_c = mgps.fit_prior(n, e, truncation="component")
    ours["component_fit_s"] = time.perf_counter() - t0
    ours["component_fit_loglik_component"] = fit_c.loglik
    out["ketaweight"] = ours
    if skip_vigipy:
        return out
    try:
        import vigipy
    except ImportError as exc:  # pragma: no cover
        out["vigipy"] = {"error": f"vigipy not installed ({exc}); run `make peers`"}
        return out
    long = df.rename(columns={"drug": "name", "event": "AE"})
    long["name"] = long["name"].astype(str)
    long["AE"] = long["AE"].astype(str)
    vt = []
    for i in range(vigipy_runs):
        print(f"  vigipy run {i + 1}/{vigipy_runs} (load {load_average()}); this takes minutes", flush=True)
        t0 = time.perf_counter()
        cont = vigipy.convert(long)
        t_conv = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = vigipy.gps(cont, min_events=1, decision_metric="rank", decision_thres=0)
        vt.append((t_conv, time.perf_counter() - t0))
    theta = np.asarray(res.params["prior_param"], dtype=float)
    # vigipy's scoring alone (its prior given, so no fit): fit time = total − scoring
    print(f"  vigipy scoring only, prior given (load {load_average()})", flush=True)
    t0 = time.perf_counter()
    vigipy.gps(cont, min_events=1, decision_metric="rank", decision_thres=0, prior_param=list(theta))
    t_score = time.perf_counter() - t0
    v = {"convert_s": statistics.median(t[0] for t in vt), "gps_s_median": statistics.median(t[1] for t in vt),
         "scoring_only_s": t_score,
         "runs": vigipy_runs, "prior": dict(zip(["alpha1", "beta1", "alpha2", "beta2", "p"], theta.tolist())),
         "message": str(res.params.get("convergence")), "version": getattr(vigipy, "__version__", "?")}
    try:
        v["loglik_mixture"] = mgps.truncated_loglik(theta, n, e, truncation="mixture")
        v["loglik_component"] = mgps.truncated_loglik(theta, n, e, truncation="component")
    except ValueError as exc:
        v["loglik_error"] = str(exc)
    out["vigipy"] = v
    return out


_INGEST_CHILD = """
import json, resource, sys, time
from ketaweight.signals.faers import ingest_faers
t0 = time.perf_counter()
rep = ingest_faers([sys.argv[1]], sys.argv[2])
dt = time.perf_counter() - t0
# VmHWM: this process image's peak RSS.  (ru_maxrss survives exec, so a child forked from a big
# parent would report the parent's size.)
peak = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
except OSError:
    pass
if peak is None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "maxrss_kib": peak, "reports": rep.reports,
                  "rows": {f.table: f.loaded for f in rep.files}}))
"""


def bench_ingest(runs: int, workdir: Path) -> dict:
    from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter

    print("\n== Ingest one synthetic quarter ==")
    t0 = time.perf_counter()
    path, truth = write_synthetic_quarter(workdir, SyntheticQuarter())
    print(f"  generated {path.name} in {time.perf_counter() - t0:.1f} s: {truth['reports']:,} reports, "
          f"{truth['drug_rows']:,} drug rows, {truth['reac_rows']:,} reaction rows "
          f"({path.stat().st_size / 2**20:.0f} MiB zipped)")
    res = []
    for i in range(runs):
        store = workdir / f"ingest{i}.duckdb"
        print(f"  ingest run {i + 1}/{runs} (load {load_average()})", flush=True)
        proc = subprocess.run([sys.executable, "-c", _INGEST_CHILD, str(path), str(store)], capture_output=True,
                              text=True, check=True)
        res.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        store.unlink()
    return {"reports_in_file": truth["reports"], "drug_rows": truth["drug_rows"], "reac_rows": truth["reac_rows"],
            "demo_rows": truth["demo_rows"], "zip_mib": path.stat().st_size / 2**20, "runs": runs,
            "seconds_median": statistics.median(r["seconds"] for r in res),
            "seconds_all": [round(r["seconds"], 2) for r in res],
            "peak_rss_gib_max": max(r["maxrss_kib"] for r in res) / 2**20,
            "reports_after_dedup": res[-1]["reports"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs of ketaweight (median reported)")
    ap.add_argument("--vigipy-runs", type=int, default=1, help="timed runs of vigipy (slow)")
    ap.add_argument("--skip-vigipy", action="store_true", help="do not run the peer")
    ap.add_argument("--skip-ingest", action="store_true", help="only the EBGM comparison")
    ap.add_argument("--json", type=Path, default=None, help="write all figures as JSON here")
    args = ap.parse_args(argv)
    info = {"machine": machine(), "load_at_start": load_average()}
    print(json.dumps(info["machine"]))
    print(f"load average at start: {info['load_at_start']}")
    info["ebgm"] = bench_ebgm(args.runs, args.vigipy_runs, args.skip_vigipy)
    if not args.skip_ingest:
        with tempfile.TemporaryDirectory() as tmp:
            info["ingest"] = bench_ingest(args.runs, Path(tmp))
    info["load_at_end"] = load_average()

    k = info["ebgm"]["ketaweight"]
    v = info["ebgm"].get("vigipy", {})
    print("\n== Side by side: EBGM, all cells of a", f"{info['ebgm']['cells']:,}-cell table ==")
    print(f"{'':34s}{'ketaweight':>16s}{'vigipy GPS':>16s}")
    if "gps_s_median" in v:
        print(f"{'fit + scores, seconds':34s}{k['total_s_median']:16.2f}{v['gps_s_median']:16.1f}"
              f"   ({v['runs']} vigipy run{'s' if v['runs'] > 1 else ''}; median of {k['runs']} ketaweight runs)")
        v_fit = v["gps_s_median"] - v["scoring_only_s"]
        print(f"{'of which prior fit, seconds':34s}{k['fit_s_median']:16.2f}{v_fit:16.1f}"
              f"   (vigipy: gps minus a gps run with its prior given)")
        print(f"{'of which scores, seconds':34s}{k['total_s_median'] - k['fit_s_median']:16.2f}"
              f"{v['scoring_only_s']:16.1f}")
        print(f"{'speed-up (prior fit)':34s}{v_fit / k['fit_s_median']:16.1f}x")
        print(f"{'speed-up (end to end)':34s}{v['gps_s_median'] / k['total_s_median']:16.1f}x")
        for d in ("mixture", "component"):
            if f"loglik_{d}" in v:
                print(f"{'log-lik, ' + d + ' truncation':34s}{k['loglik_' + d]:16.2f}{v['loglik_' + d]:16.2f}"
                      f"   (difference {k['loglik_' + d] - v['loglik_' + d]:+.2f})")
        print(f"{'converged':34s}{str(k['converged']):>16s}{v['message'][:40]:>16s}")
    else:
        print(f"{'fit + scores, seconds':34s}{k['total_s_median']:16.2f}{'(not run)':>16s}")
    if "ingest" in info:
        g = info["ingest"]
        print(f"\n== Ingest: {g['reports_in_file']:,} reports, {g['drug_rows']:,} drug rows, {g['reac_rows']:,} "
              f"reaction rows ==\n  median {g['seconds_median']:.1f} s over {g['runs']} runs {g['seconds_all']}; "
              f"peak RSS {g['peak_rss_gib_max']:.2f} GiB; {g['reports_after_dedup']:,} reports after dedup")
    print(f"load average at end: {info['load_at_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

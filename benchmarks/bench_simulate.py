"""Benchmark the virtual-patient simulator: 1,000,000 patients × 180+ days.

Targets on a 2-core machine (issue: foundation and simulator):
  observed cohort (one factual world + observation) ≤ 20 s wall
  full ground truth (all counterfactual worlds)      ≤ 60 s wall
  peak memory                                        ≤ 6 GiB

Each run is a fresh process (so peak RSS is that run's own); the median of --repeats runs is
reported, with the process CPU time beside the wall time: on a machine shared with other jobs
the wall time stretches, the CPU time much less.  The peer is the textbook way to run a mechanistic body-weight model: one ODE solve
per patient (scipy.integrate.solve_ivp on the same Hall equations, as the R ``bw`` package
or a per-patient loop would), timed on --peer-patients patients and extrapolated linearly.

    .venv/bin/python benchmarks/bench_simulate.py [--patients 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from ketaweight.sources.simulator import load_scenario, simulate
n, truth = int(sys.argv[1]), sys.argv[2] == "truth"
s = load_scenario("article")
t, c = time.perf_counter(), time.process_time()
r = simulate(s, n, 7, truth=truth)
wall, cpu = time.perf_counter() - t, time.process_time() - c
rows = sum(t.num_rows for t in r.tables.values())
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "rows": rows}))
"""

PEER = r"""
import json, sys, time
import numpy as np
from scipy.integrate import solve_ivp
from ketaweight.sources.simulator.energy import (BETA_AT, BETA_TEF, ETA_F, ETA_L, FORBES_C, GAMMA_F, GAMMA_L, RHO_F,
                                         RHO_L, TAU_AT, EnergyState)
n, days = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
w = rng.normal(80, 12, n); h = rng.normal(1.7, 0.08, n); age = rng.uniform(20, 70, n)
male = rng.random(n) < 0.5; pal = np.full(n, 1.55)
st = EnergyState.at_balance(w, h, age, male, pal)
d_ei = -rng.uniform(0, 300, n)
t0 = time.perf_counter()
for i in range(n):
    k, delta, ei0, dei = st.k_const[i], st.delta[i], st.intake0[i], d_ei[i]
    def rhs(t, y):
        f, l, at = y
        x = k + GAMMA_F * f + GAMMA_L * l + delta * (f + l) + BETA_TEF * dei + at
        r = (ei0 + dei - x) / (FORBES_C * (1 + ETA_L / RHO_L) + f * (1 + ETA_F / RHO_F))
        return [f * r / RHO_F, FORBES_C * r / RHO_L, (BETA_AT * dei - at) / TAU_AT]
    solve_ivp(rhs, (0, days), [st.fat_kg[i], st.lean_kg[i], 0.0], t_eval=np.arange(0, days + 1, 7), rtol=1e-6)
print(json.dumps({"wall_s": time.perf_counter() - t0}))
"""


def run_child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-patients", type=int, default=200)
    args = ap.parse_args()

    from ketaweight.sources.simulator import load_scenario
    from ketaweight.sources.simulator.run import n_simulated_days

    from ketaweight.sources.simulator.dynamics import grid_days

    scenario = load_scenario("article")
    days, grid = n_simulated_days(scenario), grid_days(scenario)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"n = {args.patients:,} patients × {days} simulated days (day {grid[0]} to day {grid[-1]}), "
          f"scenario 'article', repeats = {args.repeats}\n")

    results = {}
    for mode in ("observed", "truth"):
        runs = [run_child(CHILD, str(args.patients), mode) for _ in range(args.repeats)]
        results[mode] = {
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_gib": max(r["peak_gib"] for r in runs),
            "runs": [round(r["wall_s"], 2) for r in runs],
            "rows": runs[0]["rows"],
        }
        print(f"  {mode}: runs {results[mode]['runs']} s", flush=True)

    peer = run_child(PEER, str(args.peer_patients), str(days))
    peer_per_patient = peer["wall_s"] / args.peer_patients
    peer_total = peer_per_patient * args.patients
    # The peer integrates only the energy-balance ODE of one world; the full truth needs 5 worlds.
    print()
    print(f"{'measure':<44}{'ketaweight':>14}{'peer (solve_ivp/patient)':>28}{'target':>10}")
    print(f"{'observed cohort, wall s (median)':<44}{results['observed']['wall_s']:>14.1f}{peer_total:>28.0f}{'≤ 20':>10}")
    print(f"{'full ground truth (5 worlds), wall s':<44}{results['truth']['wall_s']:>14.1f}{5 * peer_total:>28.0f}{'≤ 60':>10}")
    print(f"{'  CPU time (both cores), s (median)':<44}{results['observed']['cpu_s']:>14.1f}{'':>28}{'':>10}")
    print(f"{'  CPU time, ground truth, s (median)':<44}{results['truth']['cpu_s']:>14.1f}{'':>28}{'':>10}")
    print(f"{'peak memory, GiB':<44}{max(r['peak_gib'] for r in results.values()):>14.2f}{'':>28}{'≤ 6':>10}")
    print(f"{'rows written (all tables)':<44}{results['observed']['rows']:>14,}")
    print(f"\npeer: {args.peer_patients} patients timed ({peer['wall_s']:.2f} s, {1000 * peer_per_patient:.1f} ms/patient), "
          f"extrapolated linearly to {args.patients:,}; energy balance only, one world.")
    print(f"speed-up, observed cohort vs peer: {peer_total / results['observed']['wall_s']:,.0f}×")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Cost of the flexible nuisance learners: AIPW and TMLE with the stacked and augmented learners beside the linear default.

Run: ``.venv/bin/python benchmarks/bench_flexible.py [--n 100000] [--repeats 3]``.

Each configuration runs in its own Python process (so its peak memory, ``ru_maxrss``, is its own) as a
user's script would: build the table, ``fit`` once, print the estimate; the wall time of the fit is
the median of ``--repeats`` processes.  Data: 20 covariates X ~ N(0, I), confounding through a
threshold and an interaction no design column names — P(A=1|X) = expit(−0.5 + 0.8·1[x0 > 0.5] +
0.6·x1·x2 + Xβ), Y = 1.0·A + 1.5·1[x0 > 0.5] + x1·x2 + Xγ + N(0, 1) — so the linear models are
misspecified and the flexible learners have something to find (true ATE 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

P = 20

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
from ketaweight.causal import AIPW, TMLE, AnalysisSpec
n, method, learner = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(2026)
x = rng.normal(size=(n, 20))
beta, gamma = rng.normal(scale=0.15, size=20), rng.normal(scale=0.5, size=20)
t = (x[:, 0] > 0.5).astype(float)
a = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.8 * t + 0.6 * x[:, 1] * x[:, 2] + x @ beta)))).astype(float)
y = 1.0 * a + 1.5 * t + x[:, 1] * x[:, 2] + x @ gamma + rng.normal(size=n)
df = pd.DataFrame(x, columns=[f"x{j}" for j in range(20)]); df["A"], df["Y"] = a, y
spec = AnalysisSpec(treatment="A", outcome="Y", covariates=tuple(f"x{j}" for j in range(20)))
est = (AIPW if method == "aipw" else TMLE)(learner=learner)
start, cpu = time.perf_counter(), time.process_time()
r = est.fit(df, spec)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "estimate": r.estimate, "se": r.se,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(n: int, method: str, learner: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), method, learner], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stacked-repeats", type=int, default=None, help="processes per flexible configuration (default --repeats)")
    ap.add_argument("--learners", default="linear,stacked,augmented", help="comma-separated learners to time")
    ap.add_argument("--methods", default="aipw,tmle", help="comma-separated estimators to time")
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}  n = {args.n:,}, 20 covariates, median of {args.repeats} "
          f"(stacked: {args.stacked_repeats or args.repeats})", flush=True)
    rows = []
    for method in args.methods.split(","):
        for learner in args.learners.split(","):
            k = args.repeats if learner == "linear" or args.stacked_repeats is None else args.stacked_repeats
            runs = [run(args.n, method, learner) for _ in range(k)]
            med = statistics.median(r["seconds"] for r in runs)
            rows.append((method, learner, med, [round(r["seconds"], 2) for r in runs], max(r["peak_mib"] for r in runs),
                         runs[0]["estimate"], runs[0]["se"]))
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            print(f"{method:5s} {learner:9s} median {med:7.2f} s (CPU {cpu:.1f} s)  runs {rows[-1][3]}  peak {rows[-1][4]:.0f} MiB  "
                  f"estimate {runs[0]['estimate']:.4f} (SE {runs[0]['se']:.4f}; truth 1.0)", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}  at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()

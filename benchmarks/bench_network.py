"""Network benchmark: the whole network run as a user runs it, and the control estimation beside the naive way.

1. End to end, each command a fresh process (wall, CPU and peak RSS of that process):
   ``ketaweight simulate --sites 5 --patients 20000`` with 50 negative-control outcomes (a scenario
   file that only sets ``[negative_controls] n_outcomes = 50``), then ``ketaweight network site`` at
   each of the 5 sites (the study, 50 negative controls × 3 injected effect sizes = 200 control
   outcomes, the empirical-likelihood profile, the site's own calibration with its leave-one-out
   check, the bundle), then ``ketaweight network synthesize`` of the 5 bundles (per-site and pooled
   calibration, four poolings, Bayesian pooling).  The floor beside it: ``ketaweight analyze`` of
   the same study at each site — what the study alone costs without the network.
2. The control estimation alone at one site: :func:`ketaweight.network.estimation.aipw_many` on the
   outcome and its 200 controls against fitting :class:`ketaweight.causal.aipw.AIPW` once per
   outcome (the same numbers; timed on ``--naive-outcomes`` outcomes and extrapolated linearly).

    .venv/bin/python benchmarks/bench_network.py [--patients 20000] [--sites 5] [--controls 50] [--repeats 3]

Medians of ``--repeats`` runs; the load average is printed before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine_info import cpu_model, load_average  # benchmarks/ is on sys.path when this script runs

CHILD = r"""
import json, resource, sys, time
from ketaweight.cli import app
t, c = time.perf_counter(), time.process_time()
try:
    app(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("@@" + json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "code": code,
                         "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

CONTROLS = r"""
import json, sys, time, warnings
from dataclasses import replace
from ketaweight.causal.aipw import AIPW
from ketaweight.network.controls import design_controls
from ketaweight.network.estimation import aipw_many
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.pipelines.network_site import site_data
store, naive_n = sys.argv[1], int(sys.argv[2])
data = site_data(store, "ketamine-weight")
spec = analysis_spec(data.study, "outcome_change")
plan = design_controls(data.table, outcome="outcome_change", treatment="treated", control_columns=data.control_columns,
                       kinds=data.control_kinds, effects=data.study.network.positive_control_effects)
outcomes = ["outcome_change", *(c.column for c in plan.controls)]
t = time.perf_counter(); many = aipw_many(plan.table, spec, outcomes, AIPW(seed=data.study.analysis.seed)); batch = time.perf_counter() - t
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for o in outcomes[:naive_n]:
        r = AIPW(seed=data.study.analysis.seed).fit(plan.table, replace(spec, outcome=o, censor=None, missing_outcome="censor"))
        assert abs(r.estimate - many.estimates[o].estimate) < 1e-9 * max(1.0, abs(r.estimate))
naive = (time.perf_counter() - t) / naive_n * len(outcomes)
print("@@" + json.dumps({"outcomes": len(outcomes), "n": many.estimates["outcome_change"].n, "batch_s": batch,
                         "naive_s_extrapolated": naive, "naive_timed": naive_n}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("@@")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"failed: {' '.join(args)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    res = json.loads(line[2:])
    if res.get("code"):
        raise SystemExit(f"exit {res['code']}: {' '.join(args)}\n{out.stdout[-2000:]}")
    return res


def one_repeat(root: Path, scenario: Path, patients: int, sites: int, seed: int) -> dict:
    """Every command once, in a fresh folder."""
    if root.exists():
        shutil.rmtree(root)
    out: dict = {}
    out["simulate"] = _run(CHILD, "simulate", "--scenario", str(scenario), "--sites", str(sites), "--patients", str(patients),
                           "--seed", str(seed), "--no-truth", "--out", str(root / "sim"))
    out["site"], out["analyze"] = [], []
    for i in range(1, sites + 1):
        store = root / "sim" / f"site-{i}" / "store.duckdb"
        out["site"].append(_run(CHILD, "network", "site", "--study", "ketamine-weight", "--store", str(store),
                                "--site", f"site-{i}", "--out", str(root / f"site-{i}.zip")))
        out["analyze"].append(_run(CHILD, "analyze", "--store", str(store), "--study", "ketamine-weight",
                                   "--out", str(root / f"analyze-{i}")))
    out["synthesize"] = _run(CHILD, "network", "synthesize", *(str(root / f"site-{i}.zip") for i in range(1, sites + 1)),
                             "--out", str(root / "net"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--controls", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-outcomes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu_model()}, load {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "network-benchmark.toml"
        scenario.write_text(f'name = "network-benchmark"\n[negative_controls]\nn_outcomes = {args.controls}\n', encoding="utf-8")
        reps = []
        for i in range(args.repeats):  # each repeat's raw figures as it finishes (a long run on a shared machine)
            reps.append(one_repeat(Path(tmp) / "run", scenario, args.patients, args.sites, args.seed))
            print(f"repeat {i + 1} (load {load_average()}): " + json.dumps(reps[-1]), flush=True)
        controls = _run(CONTROLS, str(Path(tmp) / "run" / "sim" / "site-1" / "store.duckdb"), str(args.naive_outcomes))

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def summary(key: str, per_site: bool) -> tuple[float, float, float]:
        walls = [sum(x["wall_s"] for x in r[key]) if per_site else r[key]["wall_s"] for r in reps]
        cpus = [sum(x["cpu_s"] for x in r[key]) if per_site else r[key]["cpu_s"] for r in reps]
        peaks = [max(x["peak_gib"] for x in r[key]) if per_site else r[key]["peak_gib"] for r in reps]
        return med(walls), med(cpus), med(peaks)

    print(f"\n{args.sites} sites × {args.patients:,} patients, {args.controls} negative controls × "
          f"{1 + 3} effect sizes, {args.repeats} repeats (medians; wall / CPU / peak RSS)")
    rows = [("simulate --sites (stores written)", summary("simulate", False)),
            (f"network site × {args.sites}", summary("site", True)),
            ("network synthesize", summary("synthesize", False))]
    total = tuple(sum(r[1][i] for r in rows) for i in range(2)) + (max(r[1][2] for r in rows),)
    for label, (w, c, p) in [*rows, ("whole network run", total), (f"floor: analyze × {args.sites}", summary("analyze", True))]:
        print(f"  {label:<36} {w:8.1f} s  {c:8.1f} s CPU  {p:5.2f} GiB")
    print(f"\ncontrol estimation at one site (n = {controls['n']:,}, {controls['outcomes']} outcomes): batch "
          f"{controls['batch_s']:.2f} s vs AIPW.fit per outcome {controls['naive_s_extrapolated']:.1f} s "
          f"(timed on {controls['naive_timed']}, extrapolated) — {controls['naive_s_extrapolated'] / controls['batch_s']:.0f}×")
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()

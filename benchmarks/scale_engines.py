"""The Spark and Dask parts of bench_scale.py (issue 17): the paths past one machine, side by side.

Section "cohort" (``cohort_figures``): the analysis table of the ketamine-weight study for --persons
simulated persons (1,000,000 by default), built by DuckDB from the store file and by Spark in local mode
(``local[2]``) from the same tables exported as Parquet (the cohort's SQL transpiled by SQLGlot); the
two tables are compared row for row.  Spark's session start is timed apart from the build.

Section "replicates" (``replicate_figures``): ``validate`` over --replicates replicate cohorts of
--patients simulated patients (scenario null), as a plain local loop, on a Dask LocalCluster of 1
worker and of 2 workers: the cluster's overhead and its speed-up; the three result sets are compared
to the last digit.

``--store FILE`` uses an existing store of simulated persons (``ketaweight simulate``) instead of
simulating them (its tables are exported as Parquet once, not timed).

Each figure is a fresh process (its peak memory its own; for Spark also the JVM's, from /proc), medians
of --repeats runs, with the load average (``uptime``) before and after: the machine is shared.  Set-up
(simulation, store load, Parquet export) is cached in --work and not timed.

    .venv/bin/python benchmarks/bench_scale.py cohort [--persons 1000000] [--repeats 1]
    .venv/bin/python benchmarks/bench_scale.py replicates [--replicates 1000] [--patients 200]

bench_scale.py's ``main`` adds these parts with :func:`add_parsers` and runs them with :func:`run`
(its FAERS part is its own function there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import load_average  # noqa: E402

PY = sys.executable

SETUP = r"""
import sys, warnings
from pathlib import Path
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store
n, work = int(sys.argv[1]), Path(sys.argv[2])
if not (work / "store.duckdb").exists():
    res = simulate(load_scenario("article"), n, 2026, truth=False)
    with Store(work / "store.duckdb") as store:
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
with Store(work / "store.duckdb", read_only=True) as store:
    store.export(work / "tables", "parquet")
"""

COHORT = r"""
import json, os, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from ketaweight.study.cohort import build_cohort
from ketaweight.study.spec import load_study
engine, work = sys.argv[1], Path(sys.argv[2])
study = load_study("ketamine-weight")
out = {}
t = time.perf_counter()
if engine == "duckdb":
    from ketaweight.store.store import Store
    source = Store(work / "store.duckdb", read_only=True)
else:
    from ketaweight.store.spark import SparkTables
    source = SparkTables(work / "tables", "local[2]")
    out["session_s"] = time.perf_counter() - t
t, c = time.perf_counter(), time.process_time()
cohort = build_cohort(source, study)
out["build_s"], out["build_cpu_s"] = time.perf_counter() - t, time.process_time() - c
out["rows"] = cohort.n
cohort.table.to_parquet(work / f"cohort-{engine}.parquet")
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if engine == "spark":
    pid = source.session.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    hwm = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1]
    out["jvm_peak_rss_mib"] = int(hwm) / 1024
    ticks = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13]  # utime, stime
    out["jvm_cpu_s"] = sum(int(x) for x in ticks) / os.sysconf("SC_CLK_TCK")  # session start included
print(json.dumps(out))
"""

REPLICATES = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from ketaweight.pipelines.validation import validate
mode, replicates, patients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kw = dict(scenarios=("null",), replicates=replicates, n_patients=patients, truth_patients=5000, seed=2026)
t = time.perf_counter()
rows = validate(**kw, workers=1) if mode == "loop" else validate(**kw, scheduler=mode)
wall = time.perf_counter() - t
digest = [(r.method, r.outcome, r.mean_estimate.hex(), r.coverage.hex(), r.mean_se.hex()) for r in rows]
print(json.dumps({"wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "digest": digest}))
"""


def _child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python; its last stdout line is the JSON it measured."""
    proc = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _runs(repeats: int, code: str, *args: str) -> dict:
    """Medians of ``repeats`` fresh runs, with the load before and after."""
    before = load_average()
    runs = [_child(code, *args) for _ in range(repeats)]
    after = load_average()
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["runs"] = runs
    out["load_before"], out["load_after"] = before, after
    return out


def cohort_figures(persons: int, work: Path, repeats: int, store: Path | None = None) -> dict:
    """The cohort build on DuckDB and on Spark local[2] (module docstring, section "cohort").
    ``store``: a store of simulated persons to use instead of simulating them (linked, not copied)."""
    import pandas as pd

    work = work / f"cohort-{persons}"
    if store is not None and not (work / "store.duckdb").exists():
        work.mkdir(parents=True, exist_ok=True)
        (work / "store.duckdb").symlink_to(store.resolve())
    if not (work / "tables" / "measurements.parquet").exists():
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        _child(SETUP + "\nprint('{}')", str(persons), str(work))
        print(f"  set-up (simulate {persons:,}, load, export Parquet): {time.perf_counter() - t:.0f} s", flush=True)
    out = {"persons": persons}
    for engine in ("duckdb", "spark"):
        print(f"  cohort on {engine} ...", flush=True)
        out[engine] = _runs(repeats, COHORT, engine, str(work))
        print(f"    {engine}: build {out[engine]['build_s']:.1f} s, {json.dumps(out[engine]['runs'])}, "
              f"load {out[engine]['load_before']} -> {out[engine]['load_after']}", flush=True)
    duck, spark = (pd.read_parquet(work / f"cohort-{e}.parquet") for e in ("duckdb", "spark"))
    try:
        pd.testing.assert_frame_equal(spark, duck, check_exact=True)
        out["tables_equal"] = True
    except AssertionError as exc:
        out["tables_equal"] = False
        out["difference"] = str(exc)[:500]
    return out


def replicate_figures(replicates: int, patients: int, repeats: int) -> dict:
    """``validate`` as a loop and on 1 and 2 Dask workers (module docstring, section "replicates")."""
    out: dict = {"replicates": replicates, "patients": patients}
    for mode in ("loop", "local:1", "local:2"):
        print(f"  {replicates} replicates, {mode} ...", flush=True)
        out[mode] = _runs(repeats, REPLICATES, mode, str(replicates), str(patients))
        print(f"    {mode}: {out[mode]['wall_s']:.1f} s", flush=True)
    digests = [out[m]["runs"][0]["digest"] for m in ("loop", "local:1", "local:2")]
    out["results_equal"] = all(d == digests[0] for d in digests)
    loop = out["loop"]["wall_s"]
    out["overhead_1_worker"] = out["local:1"]["wall_s"] / loop
    out["speedup_2_workers"] = loop / out["local:2"]["wall_s"]
    return out


def _print_cohort(c: dict) -> None:
    d, s = c["duckdb"], c["spark"]
    print(f"\nCohort build, {c['persons']:,} simulated persons (ketamine-weight study; median of {len(d['runs'])})")
    print(f"  DuckDB store      : {d['build_s']:8.1f} s   (CPU {d['build_cpu_s']:.1f} s)   peak {d['peak_rss_mib']:7.0f} MiB   load {d['load_before']} -> {d['load_after']}")
    print(f"  Spark local[2]    : {s['build_s']:8.1f} s   (+ session start {s['session_s']:.1f} s; JVM CPU "
          f"{s.get('jvm_cpu_s', float('nan')):.1f} s)   peak python "
          f"{s['peak_rss_mib']:.0f} MiB + JVM {s.get('jvm_peak_rss_mib', float('nan')):.0f} MiB   load {s['load_before']} -> {s['load_after']}")
    print(f"  rows {d['rows']:,} vs {s['rows']:,}; tables equal row for row: {c['tables_equal']}")


def _print_replicates(r: dict) -> None:
    print(f"\nValidation replicates: {r['replicates']} cohorts of {r['patients']} patients (scenario null)")
    for mode in ("loop", "local:1", "local:2"):
        m = r[mode]
        print(f"  {mode:<8}: {m['wall_s']:8.1f} s   peak {m['peak_rss_mib']:6.0f} MiB   load {m['load_before']} -> {m['load_after']}")
    print(f"  1 Dask worker / loop: {r['overhead_1_worker']:.2f}x; speed-up of 2 workers: {r['speedup_2_workers']:.2f}x; "
          f"results equal to the last digit: {r['results_equal']}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``cohort`` and ``replicates`` parts of bench_scale.py."""
    c = sub.add_parser("cohort", help="cohort build on DuckDB and on Spark local[2]")
    c.add_argument("--persons", type=int, default=1_000_000)
    c.add_argument("--repeats", type=int, default=1)
    c.add_argument("--work", type=Path, default=Path(__file__).parent / "out" / "scale")
    c.add_argument("--json", type=Path, default=None)
    c.add_argument("--store", type=Path, default=None, help="a store of simulated persons (ketaweight simulate) "
                   "to use instead of simulating --persons; its tables are exported as Parquet once")
    r = sub.add_parser("replicates", help="validation replicates: local loop, 1 and 2 Dask workers")
    r.add_argument("--replicates", type=int, default=1000)
    r.add_argument("--patients", type=int, default=200)
    r.add_argument("--repeats", type=int, default=1)
    r.add_argument("--json", type=Path, default=None)


def run(args: argparse.Namespace, info: dict) -> bool:
    """Run the part ``args.part`` if it is one of these (its figures into ``info``); False otherwise."""
    if args.part == "cohort":
        info["cohort"] = cohort_figures(args.persons, args.work, args.repeats, args.store)
        _print_cohort(info["cohort"])
    elif args.part == "replicates":
        info["replicates"] = replicate_figures(args.replicates, args.patients, args.repeats)
        _print_replicates(info["replicates"])
    else:
        return False
    return True

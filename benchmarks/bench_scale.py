"""Scale benchmarks (issue "Past one machine").  FAERS part: the whole FAERS history on one machine.

    .venv/bin/python benchmarks/bench_scale.py faers [--quarters 55] [--reports 400000] [--work DIR]
                                                     [--runs 1] [--json benchmarks/results/scale-faers.json]

What the FAERS part measures, each step a fresh ``ketaweight`` process run as a user runs it
(wall time and the child's peak resident memory from ``wait4``):

1. **ingest**: ``ketaweight signals ingest Q1.zip … Q55.zip --store history.duckdb`` — 55 synthetic
   quarters of realistic size (``signals.synthetic.history``: ≈ 400,000 reports, 1.9 M drug rows and
   1.4 M reaction rows each, one shared vocabulary, 10% of each quarter's reports follow-ups of earlier
   quarters' cases, every real-file defect present) in one streaming pass and one transaction;
2. **incremental**: one more quarter added to that store (the old quarters are not re-read;
   deduplication is re-applied across all 56);
3. **scan**: ``ketaweight signals scan --store … --all-pairs pairs.parquet`` — unique-report counts for
   every drug–event pair in DuckDB SQL, the EBGM prior fitted on all of them, PRR/ROR/IC/EBGM for every
   pair, plus the requested ketamine/esketamine pairs and controls;
4. the **floor** beside ingest: DuckDB's own ``read_csv`` of the same ``$``-delimited members (no repair,
   no quarantine, no typing, no deduplication) for ``--floor-quarters`` quarters.

The number of unique reports after deduplication is checked against the generator's truth (distinct case
ids minus deleted cases).  Targets: ingest + scan under 30 minutes and 8 GiB; the scan within 2 minutes.
The quarters are generated once into ``--work`` (about 53 MB each) and reused while their settings match.
Run it when the machine is quiet if you can: ``uptime`` is recorded before and after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import cpu_model, load_average

HERE = Path(__file__).resolve().parent
KETAWEIGHT = Path(sys.executable).with_name("ketaweight")

_GENERATE = r"""
import json, sys
import numpy as np
from pathlib import Path
from ketaweight.signals.synthetic import history, write_synthetic_quarter
work, n_q, n_rep, k = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spec = history(n_q, n_reports=n_rep)[k]
path, truth = write_synthetic_quarter(work / "zips", spec)
np.savez(work / "truth" / f"{spec.quarter}.npz", case_ids=truth["case_ids"], deleted=truth["deleted_case_ids"])
print(json.dumps({"zip": str(path), "quarter": spec.quarter, "reports": truth["reports"],
                  "drug_rows": truth["drug_rows"], "reac_rows": truth["reac_rows"], "demo_rows": truth["demo_rows"]}))
"""


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {load_average()}"


def run_measured(cmd: list[str], **kw) -> dict:
    """Run ``cmd`` as a child process; wall seconds, the child's peak RSS (GiB) and its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # wait4 already reaped it inside communicate(); RUSAGE_CHILDREN keeps the maximum over children,
    # so each measured step runs from a small parent (generation runs in its own children too)
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "peak_gib": peak_kib / 2**20, "stdout": out, "stderr": err}


def generate(work: Path, n_quarters: int, n_reports: int) -> list[dict]:
    """Write the synthetic history into ``work/zips`` (reusing what a previous run with the same
    settings wrote)."""
    manifest = work / "manifest.json"
    settings = {"quarters": n_quarters, "reports": n_reports, "generator": "signals.synthetic.history v1"}
    done = json.loads(manifest.read_text()) if manifest.exists() else {"settings": settings, "quarters": []}
    if done["settings"] != settings:
        done = {"settings": settings, "quarters": []}
    (work / "zips").mkdir(parents=True, exist_ok=True)
    (work / "truth").mkdir(parents=True, exist_ok=True)
    for k in range(len(done["quarters"]), n_quarters):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _GENERATE, str(work), str(n_quarters), str(n_reports), str(k)],
                              capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        info["seconds"] = time.perf_counter() - t0
        done["quarters"].append(info)
        manifest.write_text(json.dumps(done, indent=1))
        print(f"  generated {info['quarter']} ({k + 1}/{n_quarters}) in {info['seconds']:.0f} s "
              f"(load {load_average()})", flush=True)
    return done["quarters"]

"""Scale benchmarks (issue "Past one machine").  FAERS part: the whole FAERS history on one machine.

    .venv/bin/python benchmarks/bench_scale.py faers [--quarters 55] [--reports 400000] [--work DIR]
                                                     [--scan-runs 3] [--floor-quarters 3]
                                                     [--json benchmarks/results/scale-faers.json]

What the FAERS part measures, each step a fresh ``ketaweight`` process run as a user runs it, with
its wall time and — from ``wait4`` on that child alone — its peak resident memory and CPU time
(user + system over all its threads; on a shared machine wall time stretches, CPU time much less):

1. **ingest**: ``ketaweight signals ingest Q1.zip … Q55.zip --store history.duckdb`` — 55 synthetic
   quarters of realistic size (``signals.synthetic.history``: ≈ 400,000 reports, 1.9 M drug rows and
   1.4 M reaction rows each, one shared vocabulary, 10% of each quarter's reports follow-ups of earlier
   quarters' cases, every real-file defect present) in one streaming pass and one transaction;
   the number of unique reports after deduplication is checked against the generator's truth
   (distinct case ids minus deleted cases);
2. **scan**: ``ketaweight signals scan --store … --all-pairs pairs.parquet --out DIR`` — unique-report
   counts for every drug–event pair in DuckDB SQL, the EBGM prior fitted on all of them, PRR/ROR/IC/EBGM
   for every pair (and the requested ketamine/esketamine pairs and the controls); median of
   ``--scan-runs``; once more in-process with the three stages timed apart;
3. **incremental**: one more quarter added to that store (the old quarters are not re-read;
   deduplication is re-applied across all 56);
4. the **floor** beside ingest: DuckDB's own ``read_csv`` of the same ``$``-delimited members (no
   repair, no quarantine, no typing, no deduplication, no keys), after extracting them from the zip,
   for ``--floor-quarters`` quarters — what loading the bytes costs at the least.

Targets: ingest + scan under 30 minutes and 8 GiB; the scan within 2 minutes.  The quarters are
generated once into ``--work`` (about 53 MB each) and reused while their settings match.  ``uptime``
and ``free`` are recorded before and after every step.  Other parts (Spark, Dask) are separate
functions of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from machine_info import cpu_model, load_average

HERE = Path(__file__).resolve().parent
KETAWEIGHT = str(Path(sys.executable).with_name("ketaweight"))

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

_STAGES = r"""
import json, sys, time
from pathlib import Path
from ketaweight.signals import mapping
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.scan import all_pairs, fit_or_use_prior
t0 = time.perf_counter()
table, _ = counts_from_store(Path(sys.argv[1]), drug_map=mapping.load_drug_map(), groups=mapping.load_term_groups())
t1 = time.perf_counter()
prior, fit = fit_or_use_prior(table)
t2 = time.perf_counter()
frame = all_pairs(table, prior, converged=fit.converged, boundary=fit.boundary)
t3 = time.perf_counter()
print(json.dumps({"count_s": t1 - t0, "fit_s": t2 - t1, "score_s": t3 - t2, "pairs": len(frame),
                  "cells_fitted": fit.n_cells, "reports": table.n_reports, "drugs": len(table.drugs),
                  "events": table.n_terms, "converged": fit.converged, "prior": fit.prior.to_dict()}))
"""


def machine() -> dict:
    import duckdb
    import numpy

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "duckdb": duckdb.__version__, "platform": platform.platform(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {load_average()}"


def _free_gib() -> str:
    try:
        return " ".join(subprocess.run(["free", "-g"], capture_output=True, text=True, check=True).stdout.split())
    except (OSError, subprocess.CalledProcessError):
        return "free: not available"


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd`` as a child process: wall seconds, and from ``wait4`` on that child alone its peak
    resident memory (GiB) and CPU seconds (user + system, all threads); its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} … failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_gib": usage.ru_maxrss / 2**20,
            "stdout": stdout, "stderr": stderr}


def generate(work: Path, n_quarters: int, n_reports: int) -> list[dict]:
    """Write the synthetic history into ``work/zips`` (reusing what a previous run with the same
    settings wrote), each quarter in its own child process."""
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


def _expected_reports(work: Path, quarters: list[str]) -> int:
    import numpy as np

    cases, deleted = [], []
    for q in quarters:
        z = np.load(work / "truth" / f"{q}.npz")
        cases.append(z["case_ids"])
        deleted.append(z["deleted"])
    return int(np.setdiff1d(np.unique(np.concatenate(cases)), np.unique(np.concatenate(deleted))).size)


def _store_reports(store: Path) -> int:
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM faers_reports").fetchall()[0][0])
    finally:
        con.close()


def _floor(zips: list[Path], scratch: Path) -> dict:
    """DuckDB read_csv of the raw members (the least loading can cost), after extracting them."""
    import duckdb

    t_extract = t_read = 0.0
    rows = 0
    for z in zips:
        d = scratch / z.stem
        t0 = time.perf_counter()
        with zipfile.ZipFile(z) as zf:
            members = [n for n in zf.namelist()
                       if n.lower().endswith(".txt") and "/" in n and "readme" not in n.lower()]
            zf.extractall(d, members)
        t_extract += time.perf_counter() - t0
        con = duckdb.connect(str(scratch / "floor.duckdb"))
        con.execute("SET threads = 2")
        t0 = time.perf_counter()
        for i, m in enumerate(members):
            con.execute(f"CREATE OR REPLACE TABLE t{i} AS SELECT * FROM read_csv(?, delim='$', header=true, "
                        "all_varchar=true, quote='', escape='', ignore_errors=true, null_padding=true)",
                        [str(d / m)])
            rows += con.execute(f"SELECT count(*) FROM t{i}").fetchall()[0][0]
        t_read += time.perf_counter() - t0
        con.close()
        shutil.rmtree(d, ignore_errors=True)
        (scratch / "floor.duckdb").unlink(missing_ok=True)
    return {"quarters": len(zips), "extract_s": t_extract, "read_csv_s": t_read, "rows": rows,
            "per_quarter_s": (t_extract + t_read) / max(len(zips), 1)}


def _step(label: str, cmd: list[str]) -> dict:
    before = {"uptime": _uptime(), "free_g": _free_gib()}
    print(f"  {label} … ({before['uptime']})", flush=True)
    r = run_measured(cmd)
    r.update(before=before, after={"uptime": _uptime()})
    print(f"    {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak {r['peak_gib']:.2f} GiB", flush=True)
    return r


def bench_faers_history(work: Path, n_quarters: int = 55, n_reports: int = 400_000, scan_runs: int = 3,
                        floor_quarters: int = 3) -> dict:
    """The FAERS history figure (see the module docstring); returns every measure as a dict."""
    print(f"\n== FAERS history: {n_quarters} quarters of {n_reports:,} reports (+1 added incrementally) ==")
    print(f"  machine: {_free_gib()}; {_uptime()}", flush=True)
    quarters = generate(work, n_quarters + 1, n_reports)
    zips = [Path(q["zip"]) for q in quarters]
    store = work / "history.duckdb"
    for suffix in ("", ".wal"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    out: dict = {"quarters": n_quarters, "reports_per_quarter": n_reports,
                 "drug_rows": sum(q["drug_rows"] for q in quarters[:n_quarters]),
                 "reac_rows": sum(q["reac_rows"] for q in quarters[:n_quarters]),
                 "demo_rows": sum(q["demo_rows"] for q in quarters[:n_quarters]),
                 "zip_gib": sum(z.stat().st_size for z in zips[:n_quarters]) / 2**30}
    ing = _step(f"ingest {n_quarters} quarters", [KETAWEIGHT, "signals", "ingest", *map(str, zips[:n_quarters]),
                                                  "--store", str(store)])
    expected = _expected_reports(work, [q["quarter"] for q in quarters[:n_quarters]])
    got = _store_reports(store)
    out["ingest"] = {k: ing[k] for k in ("wall_s", "cpu_s", "peak_gib", "before", "after")}
    out["ingest"].update(reports=got, expected_reports=expected, store_gib=store.stat().st_size / 2**30)
    print(f"    {got:,} unique reports after deduplication (truth: {expected:,})")
    if got != expected:
        raise SystemExit(f"deduplication disagrees with the generator's truth: {got:,} != {expected:,}")

    scans = []
    for i in range(scan_runs):
        pairs = work / "pairs.parquet"
        r = _step(f"scan {i + 1}/{scan_runs}", [KETAWEIGHT, "signals", "scan", "--store", str(store),
                                                "--all-pairs", str(pairs), "--out", str(work / "scan")])
        r["pairs_written"] = int(r["stdout"].split("pairs.parquet: ")[1].split(" ")[0].replace(",", ""))
        scans.append(r)
    out["scan"] = {"runs": scan_runs, "wall_s_median": statistics.median(r["wall_s"] for r in scans),
                   "wall_s_all": [round(r["wall_s"], 1) for r in scans],
                   "cpu_s_median": statistics.median(r["cpu_s"] for r in scans),
                   "peak_gib_max": max(r["peak_gib"] for r in scans), "pairs": scans[-1]["pairs_written"],
                   "before": scans[0]["before"], "after": scans[-1]["after"]}
    stages = _step("scan stages (counting, prior fit, scoring)", [sys.executable, "-c", _STAGES, str(store)])
    out["scan"]["stages"] = json.loads(stages["stdout"].strip().splitlines()[-1])
    out["scan"]["stages"].update(wall_s=stages["wall_s"], peak_gib=stages["peak_gib"])

    inc = _step("add one quarter", [KETAWEIGHT, "signals", "ingest", str(zips[n_quarters]), "--store", str(store)])
    expected_inc = _expected_reports(work, [q["quarter"] for q in quarters])
    out["incremental"] = {k: inc[k] for k in ("wall_s", "cpu_s", "peak_gib", "before", "after")}
    out["incremental"].update(reports=_store_reports(store), expected_reports=expected_inc)

    with tempfile.TemporaryDirectory(dir=work) as scratch:
        print(f"  floor: DuckDB read_csv of {floor_quarters} quarters ({_uptime()})", flush=True)
        out["floor"] = _floor(zips[:floor_quarters], Path(scratch))
    out["floor"]["after"] = {"uptime": _uptime()}
    total = out["ingest"]["wall_s"] + out["scan"]["wall_s_median"]
    out["summary"] = {"ingest_plus_scan_min": total / 60, "peak_gib": max(out["ingest"]["peak_gib"],
                                                                          out["scan"]["peak_gib_max"]),
                      "targets": "ingest + scan < 30 min, < 8 GiB; scan < 2 min"}
    return out


def _print_faers(r: dict) -> None:
    i, s, inc, f = r["ingest"], r["scan"], r["incremental"], r["floor"]
    ours_q = i["wall_s"] / r["quarters"]
    print(f"\n== Side by side: FAERS history, {r['quarters']} quarters, {i['reports']:,} unique reports, "
          f"{r['drug_rows']:,} drug rows, {r['reac_rows']:,} reaction rows ==")
    print(f"  ingest: {i['wall_s'] / 60:.1f} min wall ({ours_q:.1f} s/quarter), {i['cpu_s'] / 60:.1f} min CPU, "
          f"peak {i['peak_gib']:.2f} GiB, store {i['store_gib']:.1f} GiB")
    print(f"  floor (DuckDB read_csv of the raw members, no repair/typing/dedup): {f['per_quarter_s']:.1f} s/quarter "
          f"(extract {f['extract_s']:.1f} s + read {f['read_csv_s']:.1f} s for {f['quarters']} quarters)")
    print(f"  scan of all {s['pairs']:,} pairs: median {s['wall_s_median']:.1f} s wall {s['wall_s_all']}, "
          f"{s['cpu_s_median']:.1f} s CPU, peak {s['peak_gib_max']:.2f} GiB; stages: counting "
          f"{s['stages']['count_s']:.1f} s, prior fit {s['stages']['fit_s']:.1f} s, "
          f"scoring {s['stages']['score_s']:.1f} s")
    print(f"  one more quarter: {inc['wall_s']:.1f} s wall, {inc['cpu_s']:.1f} s CPU, peak {inc['peak_gib']:.2f} GiB; "
          f"{inc['reports']:,} reports (truth {inc['expected_reports']:,})")
    print(f"  ingest + scan: {r['summary']['ingest_plus_scan_min']:.1f} min, peak {r['summary']['peak_gib']:.2f} GiB "
          f"(targets: < 30 min, < 8 GiB; scan < 2 min)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    f = sub.add_parser("faers", help="the whole FAERS history on one machine")
    f.add_argument("--quarters", type=int, default=55)
    f.add_argument("--reports", type=int, default=400_000)
    f.add_argument("--work", type=Path, default=HERE / "out" / "faers-history",
                   help="where the synthetic quarters and the store go (about 3 GB zips + 7 GB store)")
    f.add_argument("--scan-runs", type=int, default=3)
    f.add_argument("--floor-quarters", type=int, default=3)
    f.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    info = {"machine": machine(), "load_at_start": load_average()}
    print(json.dumps(info["machine"]))
    if args.part == "faers":
        info["faers_history"] = bench_faers_history(args.work, args.quarters, args.reports, args.scan_runs,
                                                    args.floor_quarters)
        _print_faers(info["faers_history"])
    info["load_at_end"] = load_average()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale benchmarks (issue "Past one machine").  FAERS part: the whole FAERS history on one machine.

    .venv/bin/python benchmarks/bench_scale.py faers [--quarters 55] [--reports 400000] [--work DIR]
                                                     [--scan-runs 3] [--floor-quarters 2] [--stop-at HH:MM]
                                                     [--json benchmarks/results/scale-faers.json]

What the FAERS part measures, each step a fresh ``ketaweight`` process run as a user runs it, with
its wall time and — from ``wait4`` on that child alone — its peak resident memory and CPU time
(user + system over all its threads; on a shared machine wall time stretches, CPU time much less):

1. **incremental ingest**: quarter k of ``signals.synthetic.history`` (≈ 400,000 reports, 1.9 M drug
   rows and 1.4 M reaction rows each, one shared vocabulary, 10% of each quarter's reports
   follow-ups of earlier quarters' cases, every real-file defect present) is generated, then
   ``ketaweight signals ingest Qk.zip --store history.duckdb`` adds it to the growing store (the old
   quarters are not re-read; deduplication is re-applied to the cases the quarter touches) — measured alone, one
   quarter after the other; after each, the unique reports are checked against the generator's truth
   (distinct case ids minus deleted cases).  Whether the per-quarter cost stays flat is read off the
   per-quarter CPU times (a line through them; with ``--stop-at``, the quarters not run are
   extrapolated from it, labelled so);
2. **scan**: ``ketaweight signals scan --store … --all-pairs pairs.parquet --out DIR`` — unique-report
   counts for every drug–event pair in DuckDB SQL, the EBGM prior fitted on all of them, PRR/ROR/IC/EBGM
   for every pair (and the requested ketamine/esketamine pairs and the controls); median of
   ``--scan-runs``; once more in-process with the three stages timed apart, and then the counting
   done again quarter by quarter — the work the totals kept at ingest save a scan
   (``signals.faers_count_totals``) — checked to give the same table;
3. the **floor** beside ingest: DuckDB's own ``read_csv`` of the same ``$``-delimited members (no
   repair, no quarantine, no typing, no deduplication, no keys), after extracting them from the zip,
   for ``--floor-quarters`` quarters — what loading the bytes costs at the least.

Targets: ingest under 30 minutes and 8 GiB; a scan of all pairs within 2 minutes.  The quarters are
generated into ``--work`` (about 53 MB each) and reused by later runs with the same settings.
``uptime`` and ``free`` are recorded before and after every step; the JSON is written after every
quarter.  The Spark and Dask parts (``cohort``, ``replicates``) are in benchmarks/scale_engines.py.
"""

from __future__ import annotations

import argparse
import calendar
import fcntl
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
from collections.abc import Callable
from pathlib import Path

import scale_engines
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
import numpy as np
from pathlib import Path
from ketaweight.signals import faers_counts, mapping
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.scan import all_pairs, fit_or_use_prior
store, kw = Path(sys.argv[1]), {"drug_map": mapping.load_drug_map(), "groups": mapping.load_term_groups()}
t0, c0 = time.perf_counter(), time.process_time()
table = counts_from_store(store, **kw)
t1, c1 = time.perf_counter(), time.process_time()
prior, fit = fit_or_use_prior(table)
t2, c2 = time.perf_counter(), time.process_time()
frame = all_pairs(table, prior, converged=fit.converged, boundary=fit.boundary)
t3, c3 = time.perf_counter(), time.process_time()
# the counting the totals kept at ingest replace: every quarter counted again (must give the same table)
faers_counts.load_totals = lambda con, codes: None
t4, c4 = time.perf_counter(), time.process_time()
counted = counts_from_store(store, **kw)
t5, c5 = time.perf_counter(), time.process_time()
same = all(np.array_equal(getattr(table, f), getattr(counted, f)) for f in
           ("cell_drug", "cell_event", "cell_n", "cell_e", "drug_n", "event_n")) and \
    (table.drugs, table.events, table.n_reports) == (counted.drugs, counted.events, counted.n_reports)
print(json.dumps({"count_s": t1 - t0, "fit_s": t2 - t1, "score_s": t3 - t2, "count_cpu_s": c1 - c0,
                  "fit_cpu_s": c2 - c1, "score_cpu_s": c3 - c2, "pairs": len(frame),
                  "count_every_quarter_s": t5 - t4, "count_every_quarter_cpu_s": c5 - c4,
                  "kept_totals_equal_counting": bool(same),
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


def generate_quarter(work: Path, k: int, n_reports: int) -> dict:
    """Quarter ``k`` of the synthetic history in ``work/zips`` (reused when a previous run with the same
    settings wrote it), generated in its own child process.  Quarter k does not depend on how many
    quarters follow it, so a longer run reuses a shorter one's zips.  Several processes may generate
    ahead of a run (``--generate-only``): a per-quarter lock makes a second caller wait for the first
    and reuse its zip, and the manifest is updated under its own lock."""
    settings = {"reports": n_reports, "generator": "signals.synthetic.history v1"}
    (work / "zips").mkdir(parents=True, exist_ok=True)
    (work / "truth").mkdir(parents=True, exist_ok=True)
    with open(work / "zips" / f".quarter-{k}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _manifest(work, settings)["quarters"].get(str(k))
        if info and Path(info["zip"]).exists():
            return info
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _GENERATE, str(work), str(k + 1), str(n_reports), str(k)],
                              capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        info["seconds"] = time.perf_counter() - t0
        with open(work / ".manifest.lock", "w") as mlock:
            fcntl.flock(mlock, fcntl.LOCK_EX)
            done = _manifest(work, settings)
            done["quarters"][str(k)] = info
            (work / "manifest.json").write_text(json.dumps(done, indent=1))
    print(f"  generated {info['quarter']} (quarter {k + 1}) in {info['seconds']:.0f} s (load {load_average()})",
          flush=True)
    return info


def _manifest(work: Path, settings: dict) -> dict:
    """The generated quarters recorded in ``work/manifest.json`` (empty when made with other settings)."""
    path = work / "manifest.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    if done.get("settings") != settings or not isinstance(done.get("quarters"), dict):
        done = {"settings": settings, "quarters": {}}
    return done


class _Truth:
    """The generator's truth over the quarters added so far: distinct case ids minus deleted ones.
    Kept as sorted arrays merged quarter by quarter (a sort of two sorted runs is linear), because
    re-sorting every quarter's ids at every quarter cost a minute per quarter at 50 quarters."""

    def __init__(self, work: Path) -> None:
        import numpy as np

        self.work, self.cases, self.deleted = work, np.zeros(0, np.int64), np.zeros(0, np.int64)

    @staticmethod
    def _merge(a, b):
        import numpy as np

        x = np.sort(np.concatenate([a, np.unique(b)]), kind="stable")
        return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x

    def add(self, quarter: str) -> int:
        """Add ``quarter``'s truth; the unique reports expected after it."""
        import numpy as np

        z = np.load(self.work / "truth" / f"{quarter}.npz")
        self.cases = self._merge(self.cases, z["case_ids"].astype(np.int64))
        self.deleted = self._merge(self.deleted, z["deleted"].astype(np.int64))
        pos = np.minimum(np.searchsorted(self.cases, self.deleted), max(self.cases.size - 1, 0))
        present = int((self.cases[pos] == self.deleted).sum()) if self.cases.size else 0
        return int(self.cases.size - present)


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


def _faers_summary(r: dict) -> dict:
    """Totals, the flatness of the per-quarter ingest time, and — when fewer than the target's quarters
    were run — the extrapolation to them (a straight line through the per-quarter times, labelled so)."""
    import numpy as np

    per = r["per_quarter"]
    n, target = len(per), r["target_quarters"]
    walls = np.array([q["wall_s"] for q in per])
    cpus = np.array([q["cpu_s"] for q in per])
    # the first quarter creates the store (no staging copy, nothing to deduplicate against): the line
    # is fitted through the quarters added to an existing store
    k = np.arange(1, n)
    slope, intercept = (np.polyfit(k, cpus[1:], 1) if n >= 4 else (0.0, float(cpus.mean())))
    wall_per_cpu = float(walls.sum() / cpus.sum())
    out = {"quarters_ingested": n, "ingest_wall_s": float(walls.sum()), "ingest_cpu_s": float(cpus.sum()),
           "ingest_peak_gib": float(max(q["peak_gib"] for q in per)),
           "first5_median_cpu_s": float(np.median(cpus[: min(5, n)])),
           "last5_median_cpu_s": float(np.median(cpus[max(n - 5, 0):])),
           "cpu_slope_s_per_quarter_in_store": float(slope), "cpu_intercept_s": float(intercept),
           "wall_per_cpu_second": wall_per_cpu,
           "store_gib": per[-1]["store_gib"], "targets": "ingest < 30 min and < 8 GiB; scan of all pairs < 2 min"}
    if n < target:
        kk = np.arange(1, target)
        cpu_total = float(cpus[0] + np.sum(intercept + slope * kk))
        out["extrapolated"] = {
            "label": f"EXTRAPOLATED from {n} measured quarters (a line through their per-quarter CPU times)",
            "quarters": target, "ingest_cpu_s": cpu_total, "last_quarter_cpu_s": float(intercept + slope * (target - 1)),
            "ingest_wall_s_at_this_load": cpu_total * wall_per_cpu}
        if "scan" in r:
            out["extrapolated"]["scan_cpu_s"] = r["scan"]["cpu_s_median"] * target / n
            out["extrapolated"]["scan_note"] = "the scan's CPU time scaled by the number of quarters (linear in rows)"
    return out


def bench_faers_history(work: Path, n_quarters: int = 55, n_reports: int = 400_000, scan_runs: int = 3,
                        floor_quarters: int = 2, stop_at: float | None = None, reserve_s: float = 600.0,
                        save: Callable[[dict], None] | None = None, resume: dict | None = None) -> dict:
    """The FAERS history figure (see the module docstring): quarters generated and then ingested one
    by one into one growing store (each ingest a fresh ``ketaweight signals ingest`` of that quarter
    alone, measured while nothing else of ours runs), then the scans and the floor.

    ``stop_at`` (a ``time.time()``): start no further quarter when the last quarter's generation and
    ingest, plus ``reserve_s`` for the scans, would run past it — the figure then covers the quarters
    done and says so.  ``save`` is called with the partial result after every quarter.  ``resume`` (the
    ``faers_history`` of an interrupted run's JSON): keep its store and its measured quarters and go on
    from the next quarter (each quarter is measured on its own, so the parts add up)."""
    print(f"\n== FAERS history: up to {n_quarters} quarters of {n_reports:,} reports, ingested one at a time ==")
    print(f"  machine: {_free_gib()}; {_uptime()}", flush=True)
    store = work / "history.duckdb"
    out: dict = {"target_quarters": n_quarters, "reports_per_quarter": n_reports, "per_quarter": [],
                 "drug_rows": 0, "reac_rows": 0, "demo_rows": 0, "zip_gib": 0.0}
    names: list[str] = []
    truth = _Truth(work)
    if resume:
        out.update({k: resume[k] for k in ("per_quarter", "drug_rows", "reac_rows", "demo_rows", "zip_gib")})
        names = [q["quarter"] for q in out["per_quarter"]]
        for q in names:
            truth.add(q)
        if _store_reports(store) != out["per_quarter"][-1]["reports"]:
            raise SystemExit(f"{store} does not hold the {len(names)} quarters of the run to resume")
        out["resumed_at_quarter"] = len(names)
        print(f"  resuming after {len(names)} measured quarters ({names[-1]})", flush=True)
    else:
        for suffix in ("", ".wal"):
            Path(str(store) + suffix).unlink(missing_ok=True)
    last = 0.0
    for k in range(len(names), n_quarters):
        if stop_at is not None and last and time.time() + last + reserve_s > stop_at:
            print(f"  stopping after {k} quarters: the next one and the scans would pass the deadline", flush=True)
            break
        t0 = time.perf_counter()
        info = generate_quarter(work, k, n_reports)
        names.append(info["quarter"])
        for key in ("drug_rows", "reac_rows", "demo_rows"):
            out[key] += info[key]
        out["zip_gib"] += Path(info["zip"]).stat().st_size / 2**30
        r = _step(f"ingest {info['quarter']} into a store of {k} quarters",
                  [KETAWEIGHT, "signals", "ingest", info["zip"], "--store", str(store)])
        got, expected = _store_reports(store), truth.add(info["quarter"])
        out["per_quarter"].append({"quarter": info["quarter"], "store_quarters_before": k, "wall_s": r["wall_s"],
                                   "cpu_s": r["cpu_s"], "peak_gib": r["peak_gib"], "reports": got,
                                   "expected_reports": expected, "store_gib": store.stat().st_size / 2**30,
                                   "before": r["before"], "after": r["after"]})
        print(f"    {got:,} unique reports after deduplication (truth: {expected:,}); "
              f"store {store.stat().st_size / 2**30:.2f} GiB", flush=True)
        if got != expected:
            raise SystemExit(f"deduplication disagrees with the generator's truth: {got:,} != {expected:,}")
        last = time.perf_counter() - t0
        out["summary"] = _faers_summary(out)
        if save:
            save(out)

    scans = []
    for i in range(scan_runs):
        pairs = work / "pairs.parquet"
        pairs.unlink(missing_ok=True)
        shutil.rmtree(work / "scan", ignore_errors=True)
        r = _step(f"scan {i + 1}/{scan_runs}", [KETAWEIGHT, "signals", "scan", "--store", str(store),
                                                "--all-pairs", str(pairs), "--out", str(work / "scan")])
        r["pairs_written"] = int(r["stdout"].split("pairs.parquet: ")[1].split(" ")[0].replace(",", ""))
        scans.append(r)
    out["scan"] = {"runs": scan_runs, "store_quarters": len(names),
                   "wall_s_median": statistics.median(r["wall_s"] for r in scans),
                   "wall_s_all": [round(r["wall_s"], 1) for r in scans],
                   "cpu_s_median": statistics.median(r["cpu_s"] for r in scans),
                   "peak_gib_max": max(r["peak_gib"] for r in scans), "pairs": scans[-1]["pairs_written"],
                   "before": scans[0]["before"], "after": scans[-1]["after"]}
    stages = _step("scan stages (counting, prior fit, scoring; counting every quarter)", [sys.executable, "-c", _STAGES, str(store)])
    out["scan"]["stages"] = json.loads(stages["stdout"].strip().splitlines()[-1])
    out["scan"]["stages"].update(wall_s=stages["wall_s"], peak_gib=stages["peak_gib"])
    out["summary"] = _faers_summary(out)
    if save:
        save(out)

    with tempfile.TemporaryDirectory(dir=work) as scratch:
        print(f"  floor: DuckDB read_csv of {floor_quarters} quarters ({_uptime()})", flush=True)
        zips = [Path(generate_quarter(work, k, n_reports)["zip"]) for k in range(min(floor_quarters, len(names)))]
        out["floor"] = _floor(zips, Path(scratch))
    out["floor"]["after"] = {"uptime": _uptime()}
    return out


def _print_faers(r: dict) -> None:
    s, f, m = r["scan"], r["floor"], r["summary"]
    per = r["per_quarter"]
    print(f"\n== Side by side: FAERS history, {m['quarters_ingested']} of {r['target_quarters']} quarters ingested "
          f"one at a time, {per[-1]['reports']:,} unique reports, {r['drug_rows']:,} drug rows, "
          f"{r['reac_rows']:,} reaction rows ==")
    print("  quarter  store before  wall s  CPU s  peak GiB  load (1 min)")
    for q in per:
        print(f"  {q['quarter']:7}  {q['store_quarters_before']:>12}  {q['wall_s']:6.1f}  {q['cpu_s']:5.1f}  "
              f"{q['peak_gib']:8.2f}  {q['before']['uptime'].split('load average:')[-1].split(',')[0].strip()}")
    print(f"  ingest: {m['ingest_wall_s'] / 60:.1f} min wall for {m['quarters_ingested']} quarters, "
          f"{m['ingest_cpu_s'] / 60:.1f} min CPU, peak {m['ingest_peak_gib']:.2f} GiB, store {m['store_gib']:.1f} GiB; "
          f"CPU per quarter: first five median {m['first5_median_cpu_s']:.1f} s, last five "
          f"{m['last5_median_cpu_s']:.1f} s, slope {m['cpu_slope_s_per_quarter_in_store']:+.2f} s per quarter "
          f"already in the store")
    print(f"  floor (DuckDB read_csv of the raw members, no repair/typing/dedup): {f['per_quarter_s']:.1f} s/quarter "
          f"(extract {f['extract_s']:.1f} s + read {f['read_csv_s']:.1f} s for {f['quarters']} quarters)")
    print(f"  scan of all {s['pairs']:,} pairs: median {s['wall_s_median']:.1f} s wall {s['wall_s_all']}, "
          f"{s['cpu_s_median']:.1f} s CPU, peak {s['peak_gib_max']:.2f} GiB; stages (wall / CPU): counting "
          f"{s['stages']['count_s']:.1f} / {s['stages']['count_cpu_s']:.1f} s, prior fit {s['stages']['fit_s']:.1f} / "
          f"{s['stages']['fit_cpu_s']:.1f} s, scoring {s['stages']['score_s']:.1f} / {s['stages']['score_cpu_s']:.1f} s; "
          f"counting every quarter instead of the totals kept at ingest {s['stages']['count_every_quarter_s']:.1f} / "
          f"{s['stages']['count_every_quarter_cpu_s']:.1f} s (same table: {s['stages']['kept_totals_equal_counting']})")
    if "extrapolated" in m:
        e = m["extrapolated"]
        print(f"  {e['label']}: {e['quarters']} quarters ≈ {e['ingest_cpu_s'] / 60:.1f} min of ingest CPU "
              f"(last quarter ≈ {e['last_quarter_cpu_s']:.1f} s CPU; ≈ {e['ingest_wall_s_at_this_load'] / 60:.0f} min "
              f"wall at this run's load); scan ≈ {e.get('scan_cpu_s', float('nan')):.0f} s CPU")
    print(f"  targets: {m['targets']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    f = sub.add_parser("faers", help="the whole FAERS history on one machine")
    f.add_argument("--quarters", type=int, default=55)
    f.add_argument("--reports", type=int, default=400_000)
    f.add_argument("--work", type=Path, default=HERE / "out" / "faers-history",
                   help="where the synthetic quarters and the store go (about 3 GB zips + 7 GB store)")
    f.add_argument("--scan-runs", type=int, default=3)
    f.add_argument("--floor-quarters", type=int, default=2)
    f.add_argument("--stop-at", default=None, help="HH:MM (UTC): start no quarter that would keep the scans "
                   "from finishing by then; the figure covers the quarters done and extrapolates, labelled so")
    f.add_argument("--reserve-min", type=float, default=10.0, help="minutes kept for the scans before --stop-at")
    f.add_argument("--json", type=Path, default=None)
    f.add_argument("--resume", action="store_true", help="go on from the quarters an interrupted run with the "
                   "same --json and --work measured (its store is kept)")
    f.add_argument("--generate-only", default=None, metavar="I/N",
                   help="only generate (and cache) quarters I, I+N, I+2N … and exit: run N of these beside the "
                   "benchmark so the quarters are ready before it reaches them")
    scale_engines.add_parsers(sub)
    args = ap.parse_args(argv)
    if args.part == "faers" and args.generate_only:
        first, stride = (int(x) for x in args.generate_only.split("/"))
        for k in range(first, args.quarters, stride):
            generate_quarter(args.work, k, args.reports)
        return 0
    info = {"machine": machine(), "load_at_start": load_average()}
    print(json.dumps(info["machine"]))

    def save(partial: dict | None = None) -> None:
        if partial is not None:
            info["faers_history"] = partial
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(info, indent=2, default=float) + "\n")

    if args.part == "faers":
        resume = json.loads(args.json.read_text())["faers_history"] if args.resume and args.json else None
        info["faers_history"] = bench_faers_history(args.work, args.quarters, args.reports, args.scan_runs,
                                                    args.floor_quarters, _stop_at(args.stop_at),
                                                    args.reserve_min * 60, save, resume)
        _print_faers(info["faers_history"])
    else:
        scale_engines.run(args, info)
    info["load_at_end"] = load_average()
    save()
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _stop_at(hhmm: str | None) -> float | None:
    """Today's HH:MM UTC as a ``time.time()`` value."""
    if not hhmm:
        return None
    h, m = (int(x) for x in hhmm.split(":"))
    now = time.gmtime()
    return float(calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, h, m, 0)))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the OMOP CDM and FHIR imports end to end, as a user runs them, beside the floor.

- DuckDB CDM of --persons simulated persons (1,000,000 by default): ``ketaweight store import-omop cdm.duckdb``
  against the floor, a plain DuckDB copy of the same CDM rows (every table the import reads) into a new
  DuckDB file.  Target: within 3× of the floor.
- The same CDM in PostgreSQL (--pg-persons, a throwaway server from the Debian binaries, loaded with OHDSI's
  5.4 DDL): ``import-omop postgresql://…`` against the floor, the same rows fetched through ADBC and copied
  into a DuckDB file.
- The same kind of cohort as FHIR NDJSON (--fhir-persons): ``import-fhir`` pinned to one core
  (``taskset -c 0``) with the default validation (``--validate read``: every element read against its R4
  type, compiled from the R4B models) and with ``--validate full`` (fhir.resources' complete R4B models), in
  resources per second; the floor is DuckDB's own NDJSON reader copying the same files into a table on that
  core.  Target: ≥ 50,000 resources/s.

Any part is skipped with 0 persons (``--persons 0``, ``--pg-persons 0``, ``--fhir-persons 0``), the
``--validate full`` runs with ``--full-repeats 0``.  Ratios and rates are given per wall second and per
CPU-second (user + system of the process and its threads): the CPU figure is the one that survives a
loaded machine.

Each measurement is a fresh process (its peak RSS is its own); medians of --repeats runs, with the load
average (``uptime``) before and after each figure: the machine is shared.  Set-up (simulation, export,
loading PostgreSQL) is cached in --work and not timed.

    .venv/bin/python benchmarks/bench_sources.py [--persons 1000000] [--pg-persons 200000] [--fhir-persons 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from machine_info import cpu_model, load_average  # noqa: E402

BIN = Path(sys.executable).parent
READ_TABLES = ("person", "observation_period", "measurement", "observation", "drug_exposure", "condition_occurrence",
               "procedure_occurrence", "concept", "concept_ancestor", "drug_strength", "cdm_source", "metadata")

DUCKDB_FLOOR = r"""
import duckdb, sys
src, out, tables = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
con = duckdb.connect(out)
con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
for t in tables:
    con.execute(f"CREATE TABLE {t} AS SELECT * FROM src.main.{t}")
"""

PG_FLOOR = r"""
import duckdb, sys
import adbc_driver_postgresql.dbapi as pg
url, out, tables = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
con, duck = pg.connect(url), duckdb.connect(out)
for t in tables:
    with con.cursor() as cur:
        cur.execute(f"SELECT * FROM cdm.{t}")
        duck.register("incoming", cur.fetch_record_batch())
        duck.execute(f"CREATE TABLE {t} AS SELECT * FROM incoming")
        duck.unregister("incoming")
"""

FHIR_FLOOR = r"""
import duckdb, sys, glob
folder, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(out)
con.execute("SET threads = 1")
for i, f in enumerate(sorted(glob.glob(folder + "/*.ndjson"))):
    con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_ndjson_objects('{f}')")
"""


def nice19_running() -> int:
    """How many running processes are at nice 19 (background fuzzing: counted in the load average, though
    it only takes CPU nobody else wants)."""
    out = subprocess.run(["ps", "-eo", "ni=,stat="], capture_output=True, text=True).stdout.split("\n")
    return sum(1 for line in out if line.split()[:1] == ["19"] and line.split()[1].startswith("R"))


def timed(cmd: list[str]) -> dict:
    """Wall and CPU seconds and peak RSS (GiB) of one fresh process, with the load (and the number of
    running nice-19 processes) before and after."""
    before, nice_before = load_average(), nice19_running()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    output = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_gib": usage.ru_maxrss / 2**20,
            "load_before": before, "load_after": load_average(), "nice19": [nice_before, nice19_running()], "output": output}


def median_of(runs: list[dict]) -> dict:
    return {"wall_s": statistics.median(r["wall_s"] for r in runs), "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_gib": max(r["peak_gib"] for r in runs), "runs_s": [round(r["wall_s"], 1) for r in runs],
            "runs_cpu_s": [round(r["cpu_s"], 1) for r in runs], "loads": [f"{r['load_before']} → {r['load_after']}" for r in runs],
            "nice19_running": [r["nice19"] for r in runs]}


def repeat(cmd: list[str], n: int, cleanup: Path | None = None) -> dict:
    runs = []
    for _ in range(n):
        if cleanup is not None and cleanup.exists():
            shutil.rmtree(cleanup) if cleanup.is_dir() else cleanup.unlink()
        runs.append(timed(cmd))
    return median_of(runs)


def simulated(work: Path, persons: int) -> Path:
    """A simulated store of ``persons`` (seed 7, no counterfactual worlds), cached."""
    out = work / f"sim-{persons}"
    if not (out / "store.duckdb").exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([str(BIN / "ketaweight"), "simulate", "-n", str(persons), "--seed", "7", "--no-truth", "--out", str(out)],
                       check=True, capture_output=True)
    return out / "store.duckdb"


def exported(store: Path, fmt: str, layout: str) -> Path:
    out = store.parent / f"{fmt}-{layout}"
    marker = out / ".done"
    if not marker.exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([str(BIN / "ketaweight"), "store", "export", "--store", str(store), "--out", str(out), "--format", fmt,
                        "--layout", layout], check=True, capture_output=True)
        marker.touch()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=1_000_000, help="persons in the DuckDB CDM (0 skips it)")
    ap.add_argument("--pg-persons", type=int, default=200_000, help="persons in the PostgreSQL CDM (0 skips PostgreSQL)")
    ap.add_argument("--fhir-persons", type=int, default=20_000, help="persons of the FHIR NDJSON cohort (0 skips FHIR)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full-repeats", type=int, default=1, help="runs of --validate full (0 skips them)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ketaweight-bench-sources"))
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "sources.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average at start: {load_average()}", flush=True)
    results: dict = {"machine": cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats}
    kw = str(BIN / "ketaweight")

    # --- DuckDB CDM
    if args.persons:
        store = simulated(args.work, args.persons)
        cdm = exported(store, "omop", "duckdb") / "cdm.duckdb"
        floor = repeat([sys.executable, "-c", DUCKDB_FLOOR, str(cdm), str(args.work / "floor.duckdb"), ",".join(READ_TABLES)],
                       args.repeats, args.work / "floor.duckdb")
        ours = repeat([kw, "store", "import-omop", str(cdm), "--store", str(args.work / "imported.duckdb")], args.repeats,
                      args.work / "imported.duckdb")
        results["duckdb_cdm"] = {"persons": args.persons, "floor": floor, "ketaweight": ours, "ratio": ours["wall_s"] / floor["wall_s"],
                                 "ratio_cpu": ours["cpu_s"] / floor["cpu_s"]}
        print(f"DuckDB CDM, {args.persons:,} persons: ketaweight {ours['wall_s']:.1f} s, {ours['cpu_s']:.1f} CPU-s "
              f"(peak {ours['peak_gib']:.2f} GiB), floor {floor['wall_s']:.1f} s, {floor['cpu_s']:.1f} CPU-s "
              f"(peak {floor['peak_gib']:.2f} GiB): {ours['wall_s'] / floor['wall_s']:.2f}× wall, "
              f"{ours['cpu_s'] / floor['cpu_s']:.2f}× CPU (target ≤ 3×); loads ours {ours['loads']}, floor {floor['loads']}",
              flush=True)

    # --- PostgreSQL
    if args.pg_persons:
        from pg_server import bin_dir, load_cdm, throwaway_server

        bindir = bin_dir()
        if bindir is None:
            print("PostgreSQL: server binaries not found; skipped")
        else:
            pg_store = simulated(args.work, args.pg_persons)
            csv = exported(pg_store, "omop", "csv")
            with throwaway_server(bindir) as url:
                t = time.perf_counter()
                load_cdm(url, csv, READ_TABLES)
                print(f"PostgreSQL loaded in {time.perf_counter() - t:.0f} s (not timed below)", flush=True)
                floor = repeat([sys.executable, "-c", PG_FLOOR, url, str(args.work / "pgfloor.duckdb"), ",".join(READ_TABLES)],
                               args.repeats, args.work / "pgfloor.duckdb")
                ours = repeat([kw, "store", "import-omop", url, "--cdm-schema", "cdm", "--store", str(args.work / "pg.duckdb")],
                              args.repeats, args.work / "pg.duckdb")
            results["postgresql_cdm"] = {"persons": args.pg_persons, "floor": floor, "ketaweight": ours,
                                         "ratio": ours["wall_s"] / floor["wall_s"]}
            print(f"PostgreSQL CDM, {args.pg_persons:,} persons: ketaweight {ours['wall_s']:.1f} s (peak {ours['peak_gib']:.2f} GiB), "
                  f"floor {floor['wall_s']:.1f} s: {ours['wall_s'] / floor['wall_s']:.2f}×; loads {ours['loads']}", flush=True)

    # --- FHIR NDJSON on one core
    if args.fhir_persons:
        fhir = exported(simulated(args.work, args.fhir_persons), "fhir", "ndjson")
        n_resources = sum(sum(1 for _ in p.open()) for p in fhir.glob("*.ndjson"))
        one_core = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        floor = repeat([*one_core, sys.executable, "-c", FHIR_FLOOR, str(fhir), str(args.work / "fhirfloor.duckdb")], args.repeats,
                       args.work / "fhirfloor.duckdb")
        fast = repeat([*one_core, kw, "store", "import-fhir", str(fhir), "--store", str(args.work / "f1.duckdb")],
                      args.repeats, args.work / "f1.duckdb")
        full = (repeat([*one_core, kw, "store", "import-fhir", str(fhir), "--validate", "full", "--store", str(args.work / "f2.duckdb")],
                       args.full_repeats, args.work / "f2.duckdb") if args.full_repeats else None)
        results["fhir_ndjson"] = {"persons": args.fhir_persons, "resources": n_resources, "floor": floor,
                                  "ketaweight_validate_read": fast, "ketaweight_validate_full": full,
                                  "rate_validate_read": n_resources / fast["wall_s"],
                                  "rate_validate_read_per_cpu_s": n_resources / fast["cpu_s"],
                                  "rate_validate_full": n_resources / full["wall_s"] if full else None,
                                  "rate_floor": n_resources / floor["wall_s"], "rate_floor_per_cpu_s": n_resources / floor["cpu_s"]}
        full_text = f", {n_resources / full['wall_s']:,.0f}/s with --validate full" if full else ""
        print(f"FHIR NDJSON, {n_resources:,} resources ({args.fhir_persons:,} persons), one core: "
              f"{n_resources / fast['wall_s']:,.0f}/s wall ({n_resources / fast['cpu_s']:,.0f} per CPU-second) with "
              f"--validate read (peak {fast['peak_gib']:.2f} GiB){full_text}; floor (DuckDB NDJSON copy) "
              f"{n_resources / floor['wall_s']:,.0f}/s ({n_resources / floor['cpu_s']:,.0f} per CPU-second); target ≥ 50,000/s; "
              f"runs {fast['runs_s']} s, loads {fast['loads']}", flush=True)
    for r in results.values():
        if isinstance(r, dict):
            for v in r.values():
                if isinstance(v, dict):
                    v.pop("output", None)  # a run's own output (kept only to show it when it fails)
    out = args.json
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average at end: {load_average()}; figures in {out}")


if __name__ == "__main__":
    main()

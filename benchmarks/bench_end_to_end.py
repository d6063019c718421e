"""The main job end to end, as a user runs the commands: ``ketaweight simulate`` (store written),
``ketaweight analyze --store … --study ketamine-weight``, ``ketaweight store load`` beside DuckDB's
own read of the same files (the floor), and ``ketaweight demo``.

Targets on a 2-core machine (issue 13) at 1,000,000 patients: simulate ≤ 60 s and ≤ 6 GiB;
analyze ≤ 45 s and ≤ 4 GiB; store load within 2× of DuckDB's own read_parquet / read_csv; the
demo ≤ 30 s.

Every command is a fresh process; wall time, CPU time (user + system) and peak resident memory
are the child's own (``os.wait4``), medians of ``--repeats`` runs (peak: the largest).  The
machine is shared, so the 1-minute load average is recorded before and after every run, and the
CPU seconds granted to a busy loop just before the runs say how much of a core this process
really got.  ``--baseline-src DIR`` also runs every command with another source tree (e.g.
``git archive <commit> src | tar -x -C DIR``) on ``PYTHONPATH``, side by side.  ``--simulate-floor`` adds the floor
of ``simulate`` at each size (:data:`SIMULATE_FLOOR`: the simulator in memory, then DuckDB's bare insert of its
tables into a fresh file, each phase timed); ``--skip-analyze`` times ``simulate`` alone.

    .venv/bin/python benchmarks/bench_end_to_end.py [--sizes 20000,100000,1000000] [--repeats 3]
        [--load-size 100000] [--load-store STORE] [--baseline-src DIR] [--work DIR] [--json benchmarks/results/end_to_end.json]
        [--skip-analyze] [--simulate-floor]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_model, load_average  # noqa: E402

CLI = "import sys; from ketaweight.cli import app; sys.argv[0] = 'ketaweight'; app()"

FLOOR = r"""
import glob, os, sys, duckdb
folder, fmt, db = sys.argv[1:4]
con = duckdb.connect(db)
for f in sorted(glob.glob(os.path.join(folder, f"*.{fmt}"))):
    name = os.path.basename(f).split(".")[0]
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    con.execute(f"CREATE TABLE \"{name}\" AS SELECT * FROM {reader}('{f}')")
con.execute("CHECKPOINT")
"""
"""DuckDB's own read of every table file into a fresh database file (types as DuckDB infers them)."""

SIMULATE_FLOOR = r"""
import json, sys, time, duckdb
from ketaweight.core.schema import TABLES, create_table_sql
from ketaweight.sources.simulator import load_scenario, simulate, with_measurement
n, db = int(sys.argv[1]), sys.argv[2]
t, c = time.perf_counter(), time.process_time()
res = simulate(with_measurement(load_scenario("article"), "clinic"), n, 7)
phases = {"simulator": (time.perf_counter() - t, time.process_time() - c)}
t, c = time.perf_counter(), time.process_time()
con = duckdb.connect(db)
con.execute("SET memory_limit = '2GiB'")
con.execute("SET enable_progress_bar = false")
for name, table in res.tables.items():
    con.execute(create_table_sql(TABLES[name]))
    con.register("_t", table)
    con.execute(f'INSERT INTO "{name}" SELECT * FROM _t')
    con.unregister("_t")
con.execute("CHECKPOINT")
con.close()
phases["insert"] = (time.perf_counter() - t, time.process_time() - c)
print(json.dumps(phases))
"""
"""The floor of ``simulate`` as it is built: the simulator in memory (the CLI's scenario, seed and measurement),
then DuckDB's bare INSERT of the same Arrow tables into a fresh file of the store's schema (no contract check,
no unit statistics, no load record) and its checkpoint; each phase's wall and CPU time by the process's own clocks
(CPU: every thread of the process)."""


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_gib: float
    load_before: float
    load_after: float


@dataclass
class Measure:
    what: str
    who: str
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu_s for r in self.runs)

    @property
    def peak(self) -> float:
        return max(r.peak_gib for r in self.runs)

    @property
    def loads(self) -> str:
        return f"{min(min(r.load_before, r.load_after) for r in self.runs):.1f}–{max(max(r.load_before, r.load_after) for r in self.runs):.1f}"


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, stdout: list[str] | None = None) -> Run:
    """One fresh process: wall, CPU (user + system) and peak RSS of that process alone (its output
    appended to ``stdout`` when given; it must stay small, as it is read after the process ends)."""
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL if stdout is None else subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{err[-2000:]}")
    if stdout is not None and proc.stdout is not None:
        stdout.append(proc.stdout.read().decode())
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, load_before, os.getloadavg()[0])


def cpu_share(seconds: float = 2.0) -> float:
    """CPU seconds a busy loop gets per wall second now (1.0 = a whole core)."""
    t, c = time.perf_counter(), time.process_time()
    while time.perf_counter() - t < seconds:
        pass
    return (time.process_time() - c) / (time.perf_counter() - t)


def ketaweight(src: Path | None) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment for the CLI of this checkout, or of the source tree ``src``."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return [sys.executable, "-c", CLI], env


def measure(what: str, who: str, repeats: int, make_argv, before=None) -> Measure:
    """``repeats`` runs of ``make_argv(i) -> (argv, env)``; ``before(i)`` prepares run i (untimed)."""
    m = Measure(what, who)
    for i in range(repeats):
        if before is not None:
            before(i)
        argv, env = make_argv(i)
        m.runs.append(run(argv, env))
        print(f"  {what:<44} {who:<14} run {i + 1}: {m.runs[-1].wall_s:7.1f} s wall, {m.runs[-1].cpu_s:7.1f} s CPU, "
              f"{m.runs[-1].peak_gib:5.2f} GiB, load {m.runs[-1].load_before:.1f}→{m.runs[-1].load_after:.1f}", flush=True)
    return m


def simulate_floor(n: int, repeats: int, work: Path) -> list[Measure]:
    """``repeats`` runs of :data:`SIMULATE_FLOOR`: the whole process, and its two phases by its own clocks
    (peak memory: the process's)."""
    prefix, env = ketaweight(None)
    whole, phases = Measure(f"simulate --patients {n:,}", "floor"), {
        "simulator": Measure(f"  simulator in memory, {n:,}", "floor phase"),
        "insert": Measure(f"  DuckDB bare insert of its tables, {n:,}", "floor phase")}
    db = work / f"floor-{n}.duckdb"
    for i in range(repeats):
        db.unlink(missing_ok=True)
        out: list[str] = []
        whole.runs.append(run([sys.executable, "-c", SIMULATE_FLOOR, str(n), str(db)], env, stdout=out))
        r = whole.runs[-1]
        for name, (wall, cpu) in json.loads(out[0].strip().splitlines()[-1]).items():
            phases[name].runs.append(Run(wall, cpu, r.peak_gib, r.load_before, r.load_after))
        print(f"  {whole.what:<44} {'floor':<14} run {i + 1}: {r.wall_s:7.1f} s wall, {r.cpu_s:7.1f} s CPU, "
              f"{r.peak_gib:5.2f} GiB, load {r.load_before:.1f}→{r.load_after:.1f}; "
              + ", ".join(f"{k} {m.runs[-1].wall_s:.1f} s wall / {m.runs[-1].cpu_s:.1f} s CPU" for k, m in phases.items()),
              flush=True)
    db.unlink(missing_ok=True)
    return [whole, *phases.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,100000,1000000", help="patients per simulated cohort, comma-separated ('' for none)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load-size", type=int, default=100000, help="cohort exported to Parquet and CSV for `store load` (0: skip)")
    ap.add_argument("--load-store", type=Path, default=None,
                    help="an existing store of --load-size patients to export for `store load` (default: simulate one; opened read-only)")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another source tree run side by side")
    ap.add_argument("--baseline-sizes", default=None,
                    help="sizes the baseline runs at (default: all of --sizes; the baseline at 1 M takes ~10 min a run)")
    ap.add_argument("--baseline-repeats", type=int, default=None, help="runs per baseline command (default: --repeats)")
    ap.add_argument("--large-repeats", type=int, default=None, help="runs per command at 1 M patients or more (default: --repeats)")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-analyze", action="store_true", help="time `simulate` only at each size")
    ap.add_argument("--simulate-floor", action="store_true",
                    help="also the floor of `simulate` at each size: the simulator in memory, then DuckDB's bare insert "
                         "of its tables into a fresh file (each phase timed)")
    ap.add_argument("--skip-baseline-load", action="store_true", help="time only ours and DuckDB's floor for `store load`")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write every run here")
    args = ap.parse_args()
    if args.load_store is not None and not args.load_store.is_file():
        ap.error(f"--load-store {args.load_store}: no such store file")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    baseline_sizes = set(int(s) for s in args.baseline_sizes.split(",")) if args.baseline_sizes else set(sizes)
    work = args.work or Path(tempfile.mkdtemp(prefix="ketaweight-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sources = [("ketaweight", None)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; load average {load_average()}")
    print(f"CPU share of a busy loop now: {cpu_share():.2f} of a core\n", flush=True)
    measures: list[Measure] = []

    def fresh(path: Path):
        return lambda i: shutil.rmtree(path, ignore_errors=True)

    def repeats(who: str, n: int = 0) -> int:
        r = args.large_repeats if n >= 1_000_000 and args.large_repeats else args.repeats
        return min(r, args.baseline_repeats or r) if who == "baseline" else r

    for n in sizes:
        for who, src in sources:
            if who == "baseline" and n not in baseline_sizes:
                continue
            prefix, env = ketaweight(src)
            out = work / f"{who}-{n}"
            measures.append(measure(f"simulate --patients {n:,}", who, repeats(who, n),
                                    lambda i: (prefix + ["simulate", "--patients", str(n), "--out", str(out)], env), fresh(out)))
            if args.skip_analyze:
                continue
            results = work / f"{who}-{n}-results"
            measures.append(measure(f"analyze --study ketamine-weight, {n:,}", who, repeats(who, n),
                                    lambda i: (prefix + ["analyze", "--store", str(out / "store.duckdb"), "--study",
                                                         "ketamine-weight", "--out", str(results), "--replace"], env)))

        if args.simulate_floor:
            measures += simulate_floor(n, repeats("floor", n), work)

    # store load against DuckDB's own read of the same files
    prefix, env = ketaweight(None)
    formats = ("parquet", "csv") if args.load_size else ()
    source = work / f"load-{args.load_size}"
    if args.load_size in sizes:  # the last simulate run of that size is the same cohort (seed 7)
        source = work / f"ketaweight-{args.load_size}"
    store_file = args.load_store or source / "store.duckdb"
    if formats and not store_file.exists():
        run(prefix + ["simulate", "--patients", str(args.load_size), "--out", str(source), "--no-truth"], env)
    rows = None
    for fmt in formats:
        folder = work / f"export-{args.load_size}-{fmt}"
        if not folder.exists():
            run(prefix + ["store", "export", "--store", str(store_file), "--out", str(folder), "--format", fmt], env)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        target = work / f"loaded-{fmt}.duckdb"
        for who, src in sources:
            if who == "baseline" and args.skip_baseline_load:
                continue
            p, e = ketaweight(src)
            measures.append(measure(f"store load {fmt} ({size:,.0f} MiB)", who, repeats(who, args.load_size),
                                    lambda i: (p + ["store", "load", str(folder), "--store", str(target)], e),
                                    lambda i: target.unlink(missing_ok=True)))
        measures.append(measure(f"store load {fmt} ({size:,.0f} MiB)", "DuckDB floor", repeats("floor", args.load_size),
                                lambda i: ([sys.executable, "-c", FLOOR, str(folder), fmt, str(target)], env),
                                lambda i: target.unlink(missing_ok=True)))
        if rows is None:
            import duckdb
            with duckdb.connect(str(store_file), read_only=True) as con:
                rows = sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                           for t in ("patients", "exposures", "measurements", "lifestyle", "adverse_events"))

    if not args.skip_demo:
        for who, src in sources:
            p, e = ketaweight(src)
            demo = work / f"{who}-demo"
            measures.append(measure("demo (20,000 patients, report)", who, repeats(who),
                                    lambda i: (p + ["demo", "--out", str(demo)], e), fresh(demo)))

    print(f"\n{'command':<46}{'who':<14}{'wall s':>8}{'CPU s':>8}{'peak GiB':>10}{'load':>10}")
    for m in measures:
        print(f"{m.what:<46}{m.who:<14}{m.wall:>8.1f}{m.cpu:>8.1f}{m.peak:>10.2f}{m.loads:>10}")
    for fmt in formats:
        ours = next(m for m in measures if m.what.startswith(f"store load {fmt}") and m.who == "ketaweight")
        floor = next(m for m in measures if m.what.startswith(f"store load {fmt}") and m.who == "DuckDB floor")
        print(f"store load {fmt}: {ours.wall / floor.wall:.2f}× DuckDB's own read (wall), {ours.cpu / floor.cpu:.2f}× (CPU)"
              f"; {rows:,} rows")
    print(f"\nload average at end: {load_average()}; CPU share of a busy loop: {cpu_share():.2f} of a core")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": cpu_model(), "measures": [
            {"what": m.what, "who": m.who, "wall_s": m.wall, "cpu_s": m.cpu, "peak_gib": m.peak,
             "runs": [asdict(r) for r in m.runs]} for m in measures]}, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

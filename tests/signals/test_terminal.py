"""The signals commands' terminal output at 80 columns (COLUMNS=80, as a real process sees it): no line
wider than the terminal, nothing cut with '…', and every number the tables show printed whole.

main: rich tables cut numbers at 80 columns and under `make` (`(0.8…`, `requ…`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ketaweight.core.privacy import mask_count
from ketaweight.signals import mapping
from ketaweight.signals.scan import scan
from ketaweight.signals.status import faers_status
from ketaweight.signals.tables import read_contingency_csv

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _run(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).with_name("ketaweight")
    res = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                         env={**os.environ, "COLUMNS": "80", "TERM": "dumb"})
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _fits(out: str) -> set[str]:
    """The output's lines fit 80 columns and nothing is elided; returns the numbers printed."""
    for line in out.splitlines():
        assert len(line) <= 80, f"{len(line)} columns: {line!r}"
    assert "…" not in out and "..." not in out
    return set(NUMBER.findall(out))


def test_scan_table_at_80_columns_prints_every_number_whole(tmp_path, statin49):
    csv = tmp_path / "statin49.csv"
    statin49.to_csv(csv)
    drugs, events = ["atorvastatin", "fluvastatin", "cerivastatin"], ["rhabdomyolysis", "myalgia", "muscle fatigue"]
    out = _run("signals", "scan", "--table", str(csv), "--drug", ",".join(drugs), "--events", ",".join(events),
               cwd=tmp_path)
    shown = _fits(out)
    groups = mapping.load_term_groups()
    res = scan(read_contingency_csv(csv, groups=groups, drug_map=mapping.load_drug_map()), drugs=drugs,
               events=events, groups=groups, controls=mapping.load_controls())
    expected = set()
    for p in res.report().pairs:
        assert f"{p.drug} ×" in out
        if p.suppressed:
            continue
        expected.add(mask_count(p.a))
        expected.add(f"{p.expected_count:,.1f}")
        for m in p.measures:
            if m.estimate == m.estimate:
                expected |= {f"{m.estimate:.2f}", f"{m.ci_low:.2f}", f"{m.ci_high:.2f}"}
    assert len(expected) > 20
    missing = sorted(x for x in expected if x not in shown and x != "<11")
    assert not missing, f"numbers cut or wrapped at 80 columns: {missing}\n{out}"


def test_ingest_and_status_at_80_columns(tmp_path, q1_zip, q2_zip):
    store = tmp_path / "s.duckdb"
    out = _run("signals", "ingest", str(q1_zip), str(q2_zip), "--store", str(store), cwd=tmp_path)
    shown = _fits(out)
    status = _run("signals", "status", "--store", str(store), cwd=tmp_path)
    shown_status = _fits(status)
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute("SELECT data_lines, records, loaded, quarantined FROM faers_files").fetchall()
    finally:
        con.close()
    dedup = [step[1:] for step in faers_status(store).dedup]
    assert rows and dedup
    for numbers in (*rows, *dedup):
        for n in numbers:
            assert f"{n:,}" in shown and f"{n:,}" in shown_status, (n, out, status)
    for name in ("DEMO23Q1.txt", "reac23q2.txt"):
        assert name in status

"""Fuzzing the signals inputs: the FAERS ASCII parser, FAERS quarter zips, and the ``--table`` /
``--long`` readers (hypothesis, structure-aware: mutations of real-format files, not random bytes).

Each input must end in a result or in an :class:`InputError` whose every problem names the file and a
one-line reason (a line and column where the file has them); no other exception, no input taking
longer than ``HANG_SECONDS`` of CPU (CPU, not wall time: the machine is shared, and a loaded machine
stretches wall time without a hang); a failed ingest leaves the store's contents unchanged.

The budgets are the hypothesis profiles of ``tests/conftest.py``: ``make test`` runs the short one
(a fixed seed); ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``) runs 10,000 per target with fresh random
inputs and writes the figures (inputs, loaded, refused, failed, hangs, slowest input) to
``fuzz-output/signals-<target>.json`` (``KETAWEIGHT_FUZZ_STATS`` to write them elsewhere; tests/fuzz/progress.py).
Why not atheris: the inputs are structured (zip containers holding ``$``-delimited text with CRCs);
coverage-guided byte mutation spends its budget on inputs rejected at the zip or UTF-8 layer, while
these strategies reach the repair paths of the parser directly.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fuzz.progress import FuzzProgress
from signals_helpers import store_rows

from ketaweight.core.errors import InputError
from ketaweight.signals.counting import read_long_table
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.faers_parse import INT64_MAX, TableParser
from ketaweight.signals.mgps import GammaMixturePrior
from ketaweight.signals.scan import scan
from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter
from ketaweight.signals.tables import read_contingency_csv

pytestmark = pytest.mark.fuzz

HANG_SECONDS = 10.0
FUZZ = settings(database=None,  # max_examples, deadline and derandomize from the profile
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
THETA = GammaMixturePrior(3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)


def _check_error(exc: InputError, files: set[str]) -> None:
    """Every problem names one of ``files`` and says why in one line."""
    assert exc.problems, "an InputError without a problem"
    for loc, reason in exc.problems:
        assert any(loc.file == f or loc.file.startswith(f) for f in files), (loc.file, files)
        assert reason and "\n" not in reason, reason
        assert loc.line is None or loc.line >= 1


def _run(progress: FuzzProgress, files: set[str], fn):
    """``fn()``'s result, or None when it refused the input with a clear InputError; counted in ``progress``."""
    with progress.input() as outcome:
        try:
            return fn()
        except InputError as exc:
            _check_error(exc, files)
            outcome["refused"] = True
            return None


def target(name: str) -> FuzzProgress:
    return FuzzProgress(f"signals-{name}", hang_cpu_s=HANG_SECONDS)


# ---- inputs: mutations of real-format files ------------------------------------------------------------

TOKENS = [b"$", b"$$", b"\r", b"\n", b"\r\n", b"\n\n", b"\x00", b"\xff", b"\xe9", b"\xc2\xb2", b"\xd9\xa3",
          b"\xef\xbb\xbf", b"9223372036854775808", b"99999999999999999999999", b"-1", b"0", b" ", b"\t", b'"',
          b"PS", b"XX", b"primaryid", b"caseid", b"1$1$", b"\xe2\x80\xa8"]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """``base`` with up to 8 edits; most land after the first line (so the header usually survives and the
    repair paths are reached), some anywhere."""
    data = bytearray(base)
    header_end = base.find(b"\n") + 1
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["insert", "insert", "delete", "duplicate", "truncate", "replace", "cr_only"]))
        lo = 0 if draw(st.integers(0, 9)) == 0 else min(header_end, len(data))
        pos = draw(st.integers(lo, len(data)))
        if op == "insert":
            tok = draw(st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=8)))
            data[pos:pos] = tok * draw(st.integers(1, 4))
        elif op == "delete":
            del data[pos: pos + draw(st.integers(1, 64))]
        elif op == "duplicate":
            piece = data[pos: pos + draw(st.integers(1, 400))]
            data[pos:pos] = piece * draw(st.integers(1, 3))
        elif op == "truncate":
            del data[pos:]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "cr_only":
            data = bytearray(bytes(data).replace(b"\r\n", b"\r"))
    return bytes(data)


def _base_quarter(tmp: Path) -> dict[str, bytes]:
    path, _ = write_synthetic_quarter(tmp, SyntheticQuarter(n_reports=40, seed=7, quarter="2023Q2"))
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.fixture(scope="module")
def base_members(tmp_path_factory) -> dict[str, bytes]:
    return _base_quarter(tmp_path_factory.mktemp("fuzzbase"))


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzzstore")
    path, _ = write_synthetic_quarter(d, SyntheticQuarter(n_reports=40, seed=8, quarter="2023Q1"))
    ingest_faers([path], d / "base.duckdb")
    return d / "base.duckdb"


@pytest.fixture(scope="module")
def base_store_rows(base_store) -> dict:
    """The base store's contents: what a failed ingest into a copy of it must leave."""
    return store_rows(base_store)


# ---- target 1: the FAERS ASCII parser ----------------------------------------------------------------------

PARSER = target("faers_parser")


@FUZZ
@given(data=st.data())
def test_fuzz_faers_parser(base_members, data):
    table = data.draw(st.sampled_from(["DEMO", "DRUG", "REAC", "OUTC", "THER", "INDI", "RPSR"]))
    base = next(v for k, v in base_members.items() if f"/{table}" in k)
    raw = data.draw(mutated(base))
    size = data.draw(st.sampled_from([len(raw) + 1, 1, 13, 256, 4096]))
    label = f"faers_ascii_2023q2.zip:ascii/{table}23Q2.txt"

    def parse():
        parser = TableParser(TABLES[table], label, max_line_bytes=1 << 16, max_carry_bytes=1 << 12)
        blocks = list(parser.blocks(raw[i: i + size] for i in range(0, max(len(raw), 1), size)))
        return parser.account, blocks

    out = _run(PARSER, {label}, parse)
    if out is None:
        return
    acc, blocks = out
    n_lines = raw.count(b"\n") + raw.count(b"\r") + 2
    assert acc.records == acc.loaded + acc.quarantined
    assert acc.records == acc.data_lines - acc.lines_joined + acc.records_split
    assert acc.loaded == sum(b.table.num_rows for b in blocks)
    for b in blocks:
        for c in TABLES[table].integer:
            vals = [v for v in b.table[c].to_pylist() if v is not None]
            assert all(0 <= v <= INT64_MAX for v in vals)
        assert all(2 <= ln <= n_lines for ln in b.table["_line"].to_pylist())
        assert all(1 <= q.line <= n_lines and "\n" not in q.reason for q in b.quarantined)


# ---- target 2: quarter zips into a store that already holds a quarter ---------------------------------------

ZIPS = target("faers_zip")


@st.composite
def quarter_zip(draw, base: dict[str, bytes]) -> bytes:
    members = dict(base)
    for name in list(members):
        if draw(st.integers(0, 5)) == 0:
            members[name] = draw(mutated(members[name]))
    rename = draw(st.sampled_from(["none", "lower", "new", "nofolder", "drop_one", "extra", "dir_entry"]))
    if rename == "lower":
        members = {k.lower(): v for k, v in members.items()}
    elif rename == "new":
        members = {k.replace(".txt", "_new.txt") if "DEMO" in k else k: v for k, v in members.items()}
    elif rename == "nofolder":
        members = {k.split("/")[-1]: v for k, v in members.items()}
    elif rename == "drop_one":
        members.pop(draw(st.sampled_from(sorted(members))))
    elif rename == "extra":
        members["ascii/DEMO23Q2 copy.txt"] = b"garbage"
    method = draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        if rename == "dir_entry":
            zf.writestr("ascii/", b"")
        for k, v in members.items():
            zf.writestr(k, v)
    raw = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "method", "encrypt"]))
        pos = draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[pos] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del raw[pos:]
        else:
            sig = raw.find(b"PK\x03\x04", pos) if pos < len(raw) else -1
            if sig >= 0:
                at = sig + (8 if kind == "method" else 6)
                raw[at: at + 2] = (9 if kind == "method" else 1).to_bytes(2, "little")
        if not raw:
            break
    return bytes(raw)


@FUZZ
@given(data=st.data())
def test_fuzz_faers_zip(base_members, base_store, base_store_rows, tmp_path_factory, data):
    d = tmp_path_factory.mktemp("z", numbered=True)
    z = d / "faers_ascii_2023q2.zip"
    z.write_bytes(data.draw(quarter_zip(base_members)))
    store = d / "s.duckdb"
    shutil.copy(base_store, store)
    rep = _run(ZIPS, {str(z), z.name, str(store)}, lambda: ingest_faers([z], store))
    if rep is None:
        assert store_rows(store) == base_store_rows, "a failed ingest changed the store"
    else:
        assert rep.reports >= 0 and all(f.records == f.loaded + f.quarantined for f in rep.files)
    shutil.rmtree(d, ignore_errors=True)


# ---- targets 3 and 4: the --table and --long readers ------------------------------------------------------------

CLEAN_CELL = st.integers(0, 50).map(str)
CELL = st.one_of(CLEAN_CELL, st.integers(-5, 10**25).map(str), st.sampled_from(
    ["", "nan", "inf", "-inf", "1e3", "1.5", " 7", "0x10", "NA", "null", "١٢", "²", '"3"', "3,000", "1_000"]),
                 st.text(max_size=6))
CLEAN_NAME = st.sampled_from(["Atorvastatin", "Other", "Ketalar", "ketamine", "St. John's Wort", "Other AE",
                              "Rhabdomyolysis", "Weight decreased", "Nausea", "Headache", "Ünïcode", "a,b"])
NAME = st.one_of(CLEAN_NAME, st.sampled_from(["", " ", "weight-loss", 'q"uote', "x\ny", "\ufeffbom"]),
                 st.text(max_size=8))


def _csv_bytes(draw, rows: list[list[str]], clean: bool) -> bytes:
    buf = io.StringIO()
    width = max(map(len, rows), default=0)  # short rows end in empty cells (pandas no longer pads them itself)
    pd.DataFrame([row + [""] * (width - len(row)) for row in rows]).to_csv(buf, header=False, index=False,
                              lineterminator="\n" if clean else draw(st.sampled_from(["\n", "\r\n", "\r"])))
    text = buf.getvalue()
    enc = "utf-8" if clean else draw(st.sampled_from(["utf-8", "latin-1", "utf-8-sig"]))
    raw = text.encode(enc, errors="replace")
    return draw(mutated(raw)) if not clean and draw(st.booleans()) else raw


TABLE = target("table_csv")


@FUZZ
@given(data=st.data())
def test_fuzz_contingency_table(tmp_path_factory, data):
    clean = data.draw(st.booleans())  # half the inputs well-formed, so the counting and scan run too
    name, cell = (CLEAN_NAME, CLEAN_CELL) if clean else (NAME, CELL)
    n_drugs, n_events = data.draw(st.integers(1 if clean else 0, 5)), data.draw(st.integers(1 if clean else 0, 6))
    header = [data.draw(st.sampled_from([""] if clean else ["", "event", "x"]))] + [data.draw(name)
                                                                                      for _ in range(n_drugs)]
    rows = [header] + [[data.draw(name)] + [data.draw(cell) for _ in range(
        n_drugs if clean else data.draw(st.integers(0, n_drugs + 1)))] for _ in range(n_events)]
    p = tmp_path_factory.mktemp("t", numbered=True) / "table.csv"
    p.write_bytes(_csv_bytes(data.draw, rows, clean))

    def read_and_scan():
        t = read_contingency_csv(p)
        if t.n_reports and t.drugs and t.events:
            scan(t, drugs=[t.drugs[0]], events=[t.events[0]], prior=THETA).to_dict()
        return t

    _run(TABLE, {str(p)}, read_and_scan)


LONG = target("long_table")


@FUZZ
@given(data=st.data())
def test_fuzz_long_table(tmp_path_factory, data):
    clean = data.draw(st.booleans())
    if clean:
        cols = ["report_id", "drug", "event"] + (["stratum"] if data.draw(st.booleans()) else [])
    else:
        cols = data.draw(st.lists(st.sampled_from(["report_id", "drug", "event", "stratum", "Report_ID", "DRUG", "x",
                                                   "", "event"]), min_size=0, max_size=5))
    n = data.draw(st.integers(1 if clean else 0, 30))
    ids = st.integers(0, 12).map(str) if clean else st.one_of(st.integers(0, 12).map(str), CELL)
    name = CLEAN_NAME if clean else NAME
    rows = [[data.draw(ids if c.lower() == "report_id" else name) for c in cols] for _ in range(n)]
    d = tmp_path_factory.mktemp("l", numbered=True)
    if data.draw(st.booleans()):
        p = d / "long.csv"
        p.write_bytes(_csv_bytes(data.draw, [cols] + rows, clean))
    else:
        p = d / "long.parquet"
        names = [f"{c}" if cols.count(c) == 1 else f"{c}{i}" for i, c in enumerate(cols)]
        kinds = [data.draw(st.sampled_from(["str"] if clean else ["str", "int", "float", "bool", "null"])) for _ in cols]
        arrays = []
        for k, j in zip(kinds, range(len(cols)), strict=True):
            vals = [r[j] for r in rows]
            if k == "int":
                arrays.append(pa.array([len(v) for v in vals], pa.int64()))
            elif k == "float":
                arrays.append(pa.array([float("nan") if not v else float(len(v)) for v in vals]))
            elif k == "bool":
                arrays.append(pa.array([bool(v) for v in vals]))
            elif k == "null":
                arrays.append(pa.nulls(len(vals), pa.string()))
            else:
                arrays.append(pa.array(vals, pa.string()))
        buf = io.BytesIO()
        pq.write_table(pa.table(arrays, names=names) if names else pa.table({}), buf)
        raw = buf.getvalue()
        p.write_bytes(data.draw(mutated(raw)) if not clean and data.draw(st.booleans()) else raw)

    def read_and_scan():
        t = read_long_table(p)
        if t.n_reports and t.drugs and t.events:
            scan(t, drugs=[t.drugs[0]], events=[t.events[0]], prior=THETA).to_dict()
        return t

    _run(LONG, {str(p)}, read_and_scan)

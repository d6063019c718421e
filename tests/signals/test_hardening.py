"""Regression tests for the FAERS/signals defects of issue 12 (known-defects.md D1–D7, D21, D25, D27,
D30, the unzipped quarter folder, a full disk, a second writer): each failed on main."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
from signals_helpers import (DEMO_HEADER, REAC_HEADER, patch_member_header, small_quarter, store_rows,
                             synthetic_zip, write_zip)
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.errors import InputError
from ketaweight.signals import mapping
from ketaweight.signals.counting import from_long
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.faers_members import ReadLimits
from ketaweight.signals.faers_parse import TableParser, parse_table_bytes
from ketaweight.signals.mgps import GammaMixturePrior
from ketaweight.signals.scan import scan
from ketaweight.signals.tables import from_contingency

runner = CliRunner()
THETA = GammaMixturePrior(3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)


def _quarantine(store):
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT file, line, column_name, reason FROM faers_quarantine ORDER BY file, line").fetchall()
    finally:
        con.close()


# ---- D1: a deleted-cases list with no ids ------------------------------------------------------


@pytest.mark.parametrize("deleted", [b"", b"caseid\r\n", b"\r\n\r\n", b"not a list\r\nat all\r\n"])
def test_d1_deleted_list_without_ids_loads(tmp_path, deleted):
    z = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter(deleted=deleted))
    rep = ingest_faers([z], tmp_path / "s.duckdb")
    assert rep.reports == 3
    bad = [q for q in _quarantine(tmp_path / "s.duckdb") if "DELETE" in q[0]]
    assert [q[1] for q in bad] == ([2] if deleted.startswith(b"not") else [])


def test_d1_small_synthetic_quarter_ingests(tmp_path):
    r = runner.invoke(app, ["signals", "synth", str(tmp_path), "--reports", "100"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["signals", "ingest", str(tmp_path / "faers_ascii_2023q1.zip"), "--store",
                            str(tmp_path / "s.duckdb")])
    assert r.exit_code == 0, r.output


# ---- D2: a lone CR inside a data line ---------------------------------------------------------------


def test_d2_lone_cr_quarantines_the_line(tmp_path):
    src = synthetic_zip(tmp_path / "src", 300)
    dst = tmp_path / "faers_ascii_2023q1.zip"
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for n in zi.namelist():
            b = zi.read(n)
            if "DEMO" in n:
                lines = b.split(b"\n")
                lines[3] = lines[3].replace(b"$", b"$\r", 1)
                b = b"\n".join(lines)
            zo.writestr(n, b)
    rep = ingest_faers([dst], tmp_path / "s.duckdb")
    demo = next(f for f in rep.files if f.table == "DEMO")
    assert demo.quarantined == 1 and demo.records == demo.loaded + demo.quarantined
    (q,) = [q for q in _quarantine(tmp_path / "s.duckdb") if "DEMO" in q[0]]
    assert q[1] == 4 and "carriage return" in q[3]


def test_cr_only_line_ends_are_read_as_line_ends():
    data = b"primaryid$caseid$outc_cod\r1$1$DE\r2$2$HO\r"
    pf = parse_table_bytes(data, TABLES["OUTC"], "OUTC.txt")
    assert pf.table["outc_cod"].to_pylist() == ["DE", "HO"]
    assert any("CR alone" in n for n in pf.account.notes)


# ---- D3: a column twice in a header -------------------------------------------------------------------


def test_d3_duplicate_header_column_is_a_clear_error(tmp_path):
    demo = b"primaryid$caseid$caseversion$fda_dt$caseid\r\n101$10$1$20230105$10\r\n"
    z = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter(demo=demo))
    with pytest.raises(InputError) as e:
        ingest_faers([z], tmp_path / "s.duckdb")
    assert str(e.value) == ("faers_ascii_2023q1.zip:ascii/DEMO23Q1.txt, line 1, column 'caseid': column 'caseid' "
                            "appears twice in the header (fields 2 and 5); which one holds the data is unclear")
    assert not (tmp_path / "s.duckdb").exists()


# ---- D4, D7: ids beyond int64, non-ASCII digits ------------------------------------------------------


def test_d4_deleted_ids_beyond_int64_and_superscripts_are_quarantined(tmp_path):
    deleted = b"caseid\r\n10\r\n99999999999999999999\r\n\xc2\xb2\r\n"
    z = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter(deleted=deleted))
    rep = ingest_faers([z], tmp_path / "s.duckdb")
    assert rep.reports == 2  # case 10 deleted
    bad = [(q[1], q[3]) for q in _quarantine(tmp_path / "s.duckdb")]
    assert bad == [(3, "a case id beyond the 64-bit range: '99999999999999999999'"), (4, "not a case id: '²'")]


def test_d7_primaryid_beyond_int64_is_quarantined_not_null(tmp_path):
    reac = REAC_HEADER + b"101$10$Weight decreased\r\n9223372036854775808$10$Rash\r\n9223372036854775807$10$Pain\r\n"
    z = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter(reac=reac))
    ingest_faers([z], tmp_path / "s.duckdb")
    assert [(q[1], q[2]) for q in _quarantine(tmp_path / "s.duckdb")] == [(3, "primaryid")]
    import duckdb

    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    ids = sorted(r[0] for r in con.execute("SELECT primaryid FROM faers_reac").fetchall())
    con.close()
    assert ids == [101, 9223372036854775807]  # no NULL


def test_unicode_digits_fail_the_integer_check_on_both_paths():
    # fast path (pyarrow) and slow path (a '$' repair) must agree: '٣' is a digit to Python, not to FAERS
    fast = parse_table_bytes(b"primaryid$caseid$outc_cod\n\xd9\xa3$1$DE\n", TABLES["OUTC"], "O.txt")
    slow = parse_table_bytes(b"primaryid$caseid$pt$drug_rec_act\n\xd9\xa3$1$A$B$\n", TABLES["REAC"], "R.txt")
    assert fast.loaded == 0 and fast.quarantined[0].column == "primaryid"
    assert slow.loaded == 0 and slow.quarantined


# ---- D5: members Python cannot read -----------------------------------------------------------------


def test_d5_deflate64_encrypted_and_corrupt_members(tmp_path):
    members = small_quarter()
    z = write_zip(tmp_path / "a" / "faers_ascii_2023q1.zip", members, compression=zipfile.ZIP_STORED)
    patch_member_header(z, method=9)
    with pytest.raises(InputError, match=r"ascii/DEMO23Q1.txt: compressed with Deflate64"):
        ingest_faers([z], tmp_path / "s.duckdb")
    z = write_zip(tmp_path / "b" / "faers_ascii_2023q1.zip", members)
    patch_member_header(z, flags=1)
    with pytest.raises(InputError, match=r"DEMO23Q1.txt: the member is encrypted"):
        ingest_faers([z], tmp_path / "s.duckdb")
    big = small_quarter(drug=b"primaryid$caseid$drug_seq$role_cod$drugname\r\n" +
                        b"".join(b"%d$%d$1$PS$DRUG%07d\r\n" % (i, i, i * 7919 % 10**7) for i in range(5000)))
    z = write_zip(tmp_path / "c" / "faers_ascii_2023q1.zip", big)
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("ascii/DRUG23Q1.txt")
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start: start + 64] = bytes(range(64))
    z.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"DRUG23Q1.txt: cannot read from the zip"):
        ingest_faers([z], tmp_path / "s.duckdb")
    assert not (tmp_path / "s.duckdb").exists()


# ---- D6: many consecutive short lines ----------------------------------------------------------------


def test_d6_runs_of_short_lines_parse_in_linear_time():
    head = b"primaryid$caseid$indi_drug_seq$indi_pt\n"
    t0 = time.process_time()
    pf = parse_table_bytes(head + b"1$2\n" * 100_000, TABLES["INDI"], "INDI.txt")  # 0.4 MB: 108 s on main
    assert time.process_time() - t0 < 20
    acc = pf.account
    assert acc.records == acc.loaded + acc.quarantined == acc.data_lines - acc.lines_joined + acc.records_split


def test_broken_record_across_a_chunk_boundary_is_joined():
    data = (b"primaryid$caseid$pt$drug_rec_act\n1$1$Nausea and\n vomiting$\n" * 50)
    whole = parse_table_bytes(data, TABLES["REAC"], "REAC.txt")
    parser = TableParser(TABLES["REAC"], "REAC.txt")
    chunks = [data[i: i + 37] for i in range(0, len(data), 37)]
    # header line once: the repeated header lines are records that fail the integer check
    rows = sum(b.table.num_rows for b in parser.blocks(chunks))
    assert rows == whole.loaded and parser.account.lines_joined == whole.account.lines_joined > 0


# ---- D21: complementary suppression -------------------------------------------------------------------


def test_d21_masked_counts_cannot_be_recovered_from_anything_beside_them(statin49):
    t = from_contingency(statin49)
    drug = "fluvastatin"
    event = next(e for e in t.events if 0 < t.pair(drug, e).a < 11)
    res = scan(t, drugs=[drug], events=[event], prior=THETA)
    doc = res.to_dict()
    p = doc["pairs"][0]
    assert p["suppressed"] and p["a"] == "<11" and p["n"] == "<11"
    assert p["b"] == p["c"] == p["d"] == "suppressed" and p["expected_count"] is None
    for m in p["measures"]:
        assert m["estimate"] is None and m["ci_low"] is None and m["ci_high"] is None
        assert m.get("chi2_yates") is None and m.get("qn") is None
    # nothing in the payload is the exact a, and the exact copy keeps everything
    exact = res.to_dict(exact_counts=True)["pairs"][0]
    assert exact["a"] == t.pair(drug, event).a and exact["measures"][2]["estimate"] is not None
    from rich.console import Console

    console = Console(record=True, width=80)
    console.print(res.to_rich_table())
    text = console.export_text()
    assert "withheld" in text and f"{exact['expected_count']:.1f}" not in text


def test_d21_a_small_b_suppresses_the_row_too():
    rows = [(f"r{i}", "rare", "x") for i in range(12)] + [("r12", "rare", "y")]  # rare: a=12 with x, b=1
    rows += [(f"s{i}", "common", e) for i in range(60) for e in ("x", "y")]
    t = from_long(pd.DataFrame(rows, columns=["report_id", "drug", "event"]))
    doc = scan(t, drugs=["rare"], events=["x"], prior=THETA).to_dict()
    p = doc["pairs"][0]
    assert p["suppressed"] and p["a"] == "suppressed" and p["b"] == "<11"  # a exact would give b = R − a


def test_d21_a_zero_cell_of_a_suppressed_pair_is_withheld_too():
    """A suppressed pair showed its zero cells ("0 discloses nothing"): with d = 0, N, and the drug's and
    the event's totals that unsuppressed pairs beside it give (a' + b', a' + c'), a = (a + b) + (a + c) − N."""
    rows = [(f"a{i}", "rare", "Weight decreased") for i in range(4)] + [(f"b{i}", "rare", "Nausea") for i in range(30)]
    rows += [(f"c{i}", "common", e) for i in range(200) for e in ("Nausea", "Weight decreased", "Headache")]
    t = from_long(pd.DataFrame(rows, columns=["report_id", "drug", "event"]))
    assert t.pair("rare", "weight decreased").d == 0
    doc = scan(t, drugs=["rare", "common"], events=["Weight decreased", "Nausea"], prior=THETA).to_dict()
    small = next(p for p in doc["pairs"] if p["drug"] == "rare" and p["event"].lower() == "weight decreased")
    assert small["a"] == "<11" and small["d"] == "suppressed"
    cells = [small[k] for k in ("a", "b", "c", "d")]
    assert all(c in ("<11", "suppressed") for c in cells), cells


# ---- D25: the same name cleaning for tables and requests ------------------------------------------------


def test_d25_long_table_names_meet_requested_names():
    df = pd.DataFrame([("1", "St. John's Wort", "Weight  decreased"), ("2", "KETALAR", "Weight decreased"),
                       ("3", "aspirin", "Nausea")] * 20, columns=["report_id", "drug", "event"])
    df["report_id"] = [f"{i}" for i in range(len(df))]
    t = from_long(df, drug_map=mapping.load_drug_map())
    res = scan(t, drugs=["st. john's wort", "ketamine"], events=["weight decreased"], prior=THETA)
    assert list(res.rows["a"]) == [20, 20]
    assert not any("appears in no report" in n for n in res.notes)


# ---- D27: identical output across runs -------------------------------------------------------------------


def test_d27_counts_and_ebgm_identical_across_runs(fixture_store, tmp_path):
    zip_path = synthetic_zip(tmp_path, 3000, seed=3)
    store = tmp_path / "s.duckdb"
    ingest_faers([zip_path], store)
    groups, dmap = mapping.load_term_groups(), mapping.load_drug_map()
    tables = [counts_from_store(store, drug_map=dmap, groups=groups, threads=2) for _ in range(3)]
    keys = tables[0].cell_drug.astype(np.int64) * len(tables[0].events) + tables[0].cell_event
    assert np.all(np.diff(keys) > 0)  # sorted: the order the prior fit sums in is fixed
    for t in tables[1:]:
        assert t.drugs == tables[0].drugs and t.events == tables[0].events
        np.testing.assert_array_equal(t.cell_n, tables[0].cell_n)
        np.testing.assert_array_equal(t.cell_e, tables[0].cell_e)
    fits = [scan(t, drugs=["ketamine"], events=["weight-loss"]) for t in tables]
    for f in fits[1:]:
        assert f.prior.to_dict() == fits[0].prior.to_dict()
        assert f.rows["ebgm"].tolist() == fits[0].rows["ebgm"].tolist()


# ---- D30: bounded members -----------------------------------------------------------------------------------


def test_d30_zip_bomb_stops_early_with_bounded_memory(tmp_path):
    z = tmp_path / "faers_ascii_2023q1.zip"
    members = small_quarter()
    members["ascii/DRUG23Q1.txt"] = b"primaryid$caseid$drug_seq$role_cod$drugname\r\n" + b"1$1$1$PS$X\r\n" * 9_000_000
    write_zip(z, members)
    assert z.stat().st_size < 1_000_000
    code = textwrap.dedent(f"""
        from ketaweight.core.errors import InputError
        from ketaweight.signals.faers import ingest_faers
        try:
            ingest_faers([{str(z)!r}], {str(tmp_path / 's.duckdb')!r})
        except InputError as e:
            print("ERR", e)
        # VmHWM, not ru_maxrss: ru_maxrss survives exec and so counts the forking pytest worker's size
        print("RSS", next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert "ERR faers_ascii_2023q1.zip:ascii/DRUG23Q1.txt: expands more than 100× its compressed size" in out
    rss_kib = int(out.split("RSS")[1])
    assert rss_kib < 1_000_000  # 4 GB on main


def test_member_size_limit(tmp_path):
    z = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter())
    with pytest.raises(InputError, match="expands to more than 100 bytes"):
        ingest_faers([z], tmp_path / "s.duckdb", limits=ReadLimits(max_member_bytes=100, chunk_bytes=64))


# ---- an unzipped quarter folder, a folder of zips --------------------------------------------------------------


def test_unzipped_quarter_folder_and_folder_of_zips(tmp_path, q1_zip, q2_zip):
    folder = tmp_path / "faers_ascii_2023q1"
    with zipfile.ZipFile(q1_zip) as zf:
        zf.extractall(folder)
    r = runner.invoke(app, ["signals", "ingest", str(folder), "--store", str(tmp_path / "a.duckdb")])
    assert r.exit_code == 0, r.output
    from_zip = ingest_faers([q1_zip], tmp_path / "b.duckdb")
    assert store_rows(tmp_path / "a.duckdb") == store_rows(tmp_path / "b.duckdb") and from_zip.reports == 6
    zips = tmp_path / "downloads"
    zips.mkdir()
    for z in (q1_zip, q2_zip):
        (zips / z.name).write_bytes(z.read_bytes())
    assert ingest_faers([zips], tmp_path / "c.duckdb").quarters == ["2023Q1", "2023Q2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    r = runner.invoke(app, ["signals", "ingest", str(empty), "--store", str(tmp_path / "d.duckdb")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "neither FAERS table files" in " ".join(r.output.split())


# ---- a full disk, a second writer, Ctrl-C -----------------------------------------------------------------------


def _limited(limit: int, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` with a file-size limit (what a full disk looks like to DuckDB: EFBIG on write)."""
    def pre():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=pre, timeout=300)


def test_full_disk_is_one_clear_line_and_keeps_the_contents(tmp_path):
    store = tmp_path / "s.duckdb"
    ingest_faers([synthetic_zip(tmp_path / "a", 300)], store)
    before = store_rows(store)
    big = synthetic_zip(tmp_path / "b", 20_000, quarter="2023Q2")
    limit = store.stat().st_size + 1_500_000
    r = _limited(limit, f"from ketaweight.cli import app; app(['signals', 'ingest', {str(big)!r}, '--store', "
                        f"{str(store)!r}])")
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "the disk is full or the file reached its size limit" in err and "contents are as before" in err
    assert store_rows(store) == before


def test_a_second_writer_gets_a_clear_line(tmp_path):
    store = tmp_path / "s.duckdb"
    ingest_faers([synthetic_zip(tmp_path / "a", 300)], store)
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({str(store)!r}); "
                               "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for cmd in (["signals", "ingest", str(synthetic_zip(tmp_path / "b", 300, quarter="2023Q2")), "--store",
                     str(store)], ["signals", "scan", "--store", str(store)], ["signals", "status", "--store",
                                                                               str(store)]):
            r = runner.invoke(app, cmd)
            text = " ".join(r.output.split())
            assert r.exit_code == 2 and "another process is using the store" in text, (cmd, r.output)
    finally:
        holder.kill()
        holder.wait()


def test_interrupt_during_ingest_leaves_nothing(tmp_path):
    store = tmp_path / "s.duckdb"
    ingest_faers([synthetic_zip(tmp_path / "a", 300)], store)
    before = store_rows(store)
    seen = []

    def progress(n):
        seen.append(n)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_faers([synthetic_zip(tmp_path / "b", 3000, quarter="2023Q2")], store, progress=progress)
    assert store_rows(store) == before
    new = tmp_path / "new.duckdb"
    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        ingest_faers([synthetic_zip(tmp_path / "b", 3000, quarter="2023Q2")], new, progress=progress)
    assert not new.exists() and not os.path.exists(str(new) + ".wal")


def _recoverable(pair: dict) -> list[str]:
    """Fields of a shared pair that would give a masked cell back (empty when suppression holds)."""
    masked = [k for k in ("a", "b", "c", "d") if pair[k] == "<11"]
    if not masked:
        return []
    leaks = [k for k in ("a", "b", "c", "d", "n") if isinstance(pair[k], int) and pair[k] != 0]
    leaks += ["expected_count"] if pair["expected_count"] is not None else []
    for m in pair["measures"]:
        leaks += [f"{m['method']}.{k}" for k in ("estimate", "ci_low", "ci_high", "chi2_yates", "qn")
                  if m.get(k) is not None]
    return leaks


def test_d21_the_demo_real_data_table_hides_every_small_cell(tmp_path):
    """The demo's mddc scan (dexmedetomidine × weight loss has a = 4): every pair with a masked cell
    carries nothing that gives it back."""
    from ketaweight.core.results import read_results
    from ketaweight.pipelines.signals import mddc_signals

    mddc_signals(tmp_path / "signals-mddc.json")
    pairs = read_results(tmp_path / "signals-mddc.json", kind="signals")["results"]["pairs"]
    dex = next(p for p in pairs if p["drug"] == "dexmedetomidine")
    assert dex["a"] == "<11" and dex["suppressed"]
    assert {p["drug"]: _recoverable(p) for p in pairs} == {p["drug"]: [] for p in pairs}
    assert any(not p["suppressed"] and isinstance(p["a"], int) and p["a"] >= 11 for p in pairs)


def test_an_error_inside_an_insert_is_the_error_raised():
    """This branch before the fix: an error or Ctrl-C inside a block's INSERT aborted the transaction, and
    the cleanup's ``unregister`` then raised DuckDB's 'Current transaction is aborted' instead (a traceback
    where Ctrl-C should give one line)."""
    import duckdb
    import pyarrow as pa

    from ketaweight.signals.faers_store import append

    con = duckdb.connect()
    con.execute("CREATE TABLE t (quarter VARCHAR, id BIGINT)")
    con.begin()
    with pytest.raises(duckdb.ConversionException):
        append(con, "t", "2023Q1", pa.table({"id": pa.array(["not a number"])}))
    con.rollback()
    con.close()


@pytest.mark.parametrize("seconds", [2.0, 7.0])  # start-up and parsing, later the inserts and keys
def test_ctrl_c_during_ingest_is_one_line_and_leaves_no_store(tmp_path, seconds):
    """main: Ctrl-C gave a traceback; a signal sent to a real process, not a Python exception raised
    between queries, so it also lands inside DuckDB statements."""
    z = synthetic_zip(tmp_path / "z", 20_000)
    store = tmp_path / "s.duckdb"
    exe = os.path.join(os.path.dirname(sys.executable), "ketaweight")
    proc = subprocess.Popen([exe, "signals", "ingest", str(z), "--store", str(store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "80"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # runners ignore it
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:  # finished before the signal: then the store is whole
        assert store_rows(store)["faers_demo"] > 0
        return
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err[-2000:])
    assert "Traceback" not in err and [ln for ln in err.splitlines() if "interrupted" in ln], err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z"]  # no store, no work file

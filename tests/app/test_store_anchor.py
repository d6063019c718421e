"""The store coordination of the clinic service's processes (app/storelock) and the patient record the pages
read through it (pipelines/patient_record): a load announces itself and every anchor lets go; pages wait
and then answer busy; the store version changes with a load and only then; mg/kg from the nearest weight."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ketaweight.app.storelock import POLL_S, ReadAnchor, StoreBusy, load_wanted, store_lock, store_version
from ketaweight.pipelines.patient_record import patient_record
from ketaweight.store import Store

from .conftest import south_folder


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "store.duckdb"
    with Store(path) as s:
        s.load_folder(south_folder(tmp_path / "south"))
    return path


def _hold_exclusive_in_another_process(store: Path, seconds: float) -> subprocess.Popen:
    code = ("import sys, time; from pathlib import Path; from ketaweight.app.storelock import store_lock\n"
            f"with store_lock(Path({str(store)!r}), exclusive=True, timeout_s=None):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[1]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_load_in_another_process_makes_the_anchor_let_go_and_pages_wait(store):
    anchor = ReadAnchor(store, timeout_s=0.5)
    anchor.start()
    try:
        with anchor.reading() as reading:
            assert reading.reader.record("S-LOSS") is not None
            version = reading.version
        # the anchor holds the store shared: a load announces itself, the watcher closes, the load gets it
        started = time.monotonic()
        proc = _hold_exclusive_in_another_process(store, 1.5)
        assert time.monotonic() - started < 10 * POLL_S + 5  # not blocked behind the open anchor
        assert load_wanted(store)
        with pytest.raises(StoreBusy), anchor.reading():
            pass
        proc.wait(timeout=30)
        assert not load_wanted(store)
        with anchor.reading() as reading:  # opened again after the load
            assert reading.reader.record("S-OK") is not None
            assert reading.version == version  # that "load" wrote nothing
    finally:
        anchor.stop()


def test_the_store_version_changes_with_a_write_and_not_with_reads(store, tmp_path):
    before = store_version(store)
    assert patient_record(store, "S-LOSS") is not None
    assert store_version(store) == before
    more = tmp_path / "more"
    more.mkdir()
    pd.DataFrame({"patient_id": ["S-NEW"], "sex": ["M"], "birth_year": [1970], "height_cm": [175.0]}).to_csv(
        more / "patients.csv", index=False)
    with store_lock(store, exclusive=True), Store(store) as s:
        s.load_folder(more)
    assert store_version(store) != before


def test_readers_wait_for_a_load_then_go(store):
    order: list[str] = []

    def reader() -> None:
        with store_lock(store, timeout_s=10):
            order.append("read")

    with store_lock(store, exclusive=True):
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(3 * POLL_S)
        order.append("load done")
    t.join(timeout=10)
    assert order == ["load done", "read"]


def test_the_record_takes_mg_per_kg_from_the_nearest_weight(store):
    record = patient_record(store, "S-LOSS")
    assert record is not None and record.sex == "F" and record.height_cm == 165.0
    weights = {w.time: w.kg for w in record.weights}
    assert len(record.sessions) == 6 and len(weights) == 19
    for s in record.sessions:
        nearest = min(weights, key=lambda t: (abs((t - s.time).total_seconds()), t))
        assert math.isclose(s.mg_per_kg, s.dose_mg / weights[nearest])
    # sessions on days 0-11 at 10:00, weighings weekly at midnight from day -7: day 11 is nearest day 14 (73.6 kg)
    assert math.isclose(record.sessions[-1].mg_per_kg, 40.0 / 73.6)
    none = patient_record(store, "S-NONE")
    assert none is not None and not none.weights and not none.sessions
    assert patient_record(store, "nobody") is None

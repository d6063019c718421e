"""Building FAERS zips and stores for the signals tests (hand-made members, patched headers)."""

from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path

import duckdb

from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter

DEMO_HEADER = b"primaryid$caseid$caseversion$fda_dt\r\n"
DRUG_HEADER = b"primaryid$caseid$drug_seq$role_cod$drugname$prod_ai\r\n"
REAC_HEADER = b"primaryid$caseid$pt\r\n"


def write_zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def small_quarter(yy: str = "23", q: int = 1, *, demo: bytes | None = None, drug: bytes | None = None,
                  reac: bytes | None = None, deleted: bytes | None = None) -> dict[str, bytes]:
    """The members of a tiny valid quarter (3 reports), any of them replaced."""
    tag = f"{yy}Q{q}"
    out = {
        f"ascii/DEMO{tag}.txt": demo if demo is not None else
        DEMO_HEADER + b"101$10$1$20230105\r\n201$20$1$20230106\r\n301$30$1$20230107\r\n",
        f"ascii/DRUG{tag}.txt": drug if drug is not None else
        DRUG_HEADER + b"101$10$1$PS$KETALAR$KETAMINE\r\n201$20$1$PS$ASPIRIN$\r\n301$30$1$PS$ASPIRIN$\r\n",
        f"ascii/REAC{tag}.txt": reac if reac is not None else
        REAC_HEADER + b"101$10$Weight decreased\r\n201$20$Nausea\r\n301$30$Headache\r\n",
    }
    if deleted is not None:
        out[f"deleted/DELETE{tag}.txt"] = deleted
    return out


def patch_member_header(path: Path, *, method: int | None = None, flags: int | None = None) -> None:
    """Rewrite the compression method and/or general-purpose flags of every member, in both the
    local headers and the central directory (as a Deflate64 or encrypting zip tool would write them)."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = data.find(sig)
        while i >= 0:
            if flags is not None:
                data[i + flag_at: i + flag_at + 2] = struct.pack("<H", flags)
            if method is not None:
                data[i + method_at: i + method_at + 2] = struct.pack("<H", method)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_rows(path: Path) -> dict[str, int]:
    """Rows per FAERS table and the quarters: what 'the store is unchanged' compares."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_name LIKE 'faers_%' ORDER BY 1").fetchall()]
        out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
        out["quarters"] = tuple(q for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files ORDER BY 1").fetchall())
        return out
    finally:
        con.close()


def synthetic_zip(tmp: Path, n: int = 300, **kw) -> Path:
    path, _ = write_synthetic_quarter(tmp, SyntheticQuarter(n_reports=n, **kw))
    return path

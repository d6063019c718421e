"""Parse one FAERS ``$``-delimited file, repairing what can be repaired and quarantining the rest.

Fast path: delimiters are counted per line with numpy on the raw bytes; lines with the
expected count (the overwhelming majority) are parsed by pyarrow's C++ CSV reader.  Slow
path: the few other lines are repaired in Python, each repair recorded:

* **non-UTF-8 bytes** — a line that is not valid UTF-8 is decoded as Windows-1252 (Latin-1
  if that fails): the FAERS files mix encodings.  Counted as ``encoding_repairs``.
* **broken line** — a record split over several lines (a newline inside a value): joined
  with a space when the pieces together have exactly the expected number of fields.
* **collapsed lines** — two records on one line (a lost newline): split where the second
  record's ``primaryid`` begins; accepted only if its next field, ``caseid``, is a prefix
  of that ``primaryid`` (FAERS ``primaryid`` = ``caseid`` followed by ``caseversion``).
* **'$' inside a value** — extra fields merged back into the one free-text column for which
  every column check and shape check then passes; if none or several do, the line is
  quarantined as ambiguous.

Every record then passes the table's column checks (:mod:`faers_format`) or goes to the
quarantine with file, line, column and reason.  Counts reconcile:
``records = loaded + quarantined`` and
``records = data lines − lines joined into a previous record + extra records split out``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.faers_format import TableSpec

__all__ = ["ParsedFile", "Quarantined", "parse_table_bytes", "parse_deleted_bytes"]


@dataclass(frozen=True)
class Quarantined:
    line: int
    column: str | None
    reason: str
    raw: str


@dataclass
class ParsedFile:
    """A parsed file: string columns (canonical names), source line numbers, and the accounting."""

    table: pa.Table
    header: list[str]
    data_lines: int = 0
    records: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    encoding_repairs: int = 0
    lines_joined: int = 0
    records_split: int = 0
    dollar_repairs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.table.num_rows


_NL = 10
_DOLLAR = 36


def _fix_encoding(data: bytes, chunk: int = 1 << 24) -> tuple[bytes, list[int]]:
    """Make ``data`` valid UTF-8, re-decoding each invalid line as cp1252 (or latin-1): the
    FAERS files mix encodings.  Validation runs in chunks (no full-size str is built).
    Returns the (possibly new) bytes and the 0-based indices of the lines repaired."""
    mv = memoryview(data)
    bad_lines: list[tuple[int, int]] = []  # (line start, line end) byte offsets
    pos, size = 0, len(data)
    while pos < size:
        end = min(pos + chunk, size)
        if end < size:
            nxt = data.find(b"\n", end)
            end = size if nxt < 0 else nxt + 1
        try:
            str(mv[pos:end], "utf-8")
            pos = end
        except UnicodeDecodeError as exc:
            bad = pos + exc.start
            ls = data.rfind(b"\n", 0, bad) + 1
            le = data.find(b"\n", bad)
            le = size if le < 0 else le
            bad_lines.append((ls, le))
            # re-validate from the end of the bad line
            pos = le
    if not bad_lines:
        return data, []
    parts, repaired, prev = [], [], 0
    for ls, le in bad_lines:
        parts.append(mv[prev:ls])
        raw = bytes(mv[ls:le])
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        parts.append(text.encode("utf-8"))
        repaired.append(data.count(b"\n", 0, ls))
        prev = le
    parts.append(mv[prev:])
    return b"".join(parts), repaired


def _scan_lines(body: memoryview, base: int, chunk: int = 1 << 24):
    """Per line of ``body``: end offsets (positions of '\\n'), '$' counts, and whether the line
    is blank (empty or a lone '\\r').  ``body`` views ``body.obj`` from byte ``base`` on.
    Works in chunks so no full-size temporary is made."""
    arr = np.frombuffer(body, dtype=np.uint8)
    nls, cnts, blanks = [], [], []
    pos, size = 0, arr.size
    while pos < size:
        end = min(pos + chunk, size)
        if end < size:
            cut = body.obj.rfind(b"\n", base + pos, base + end) - base
            end = cut + 1 if cut >= pos else min(size, _next_nl(arr, end) + 1)
        a = arr[pos:end]
        nl = np.flatnonzero(a == _NL)
        if nl.size:
            st = np.r_[0, nl[:-1] + 1]
            c = np.add.reduceat((a == _DOLLAR).view(np.uint8), st, dtype=np.int64)
            length = nl - st
            c[length == 0] = 0  # reduceat returns the start element for empty segments
            blank = (length == 0) | ((length == 1) & (a[st] == 13))
            nls.append(nl + pos)
            cnts.append(c)
            blanks.append(blank)
        pos = end
    if not nls:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(nls), np.concatenate(cnts), np.concatenate(blanks)


def _next_nl(arr: np.ndarray, start: int) -> int:
    hit = np.flatnonzero(arr[start:] == _NL)
    return start + int(hit[0]) if hit.size else arr.size - 1


def _check_row(values: dict[str, str], spec: TableSpec, compiled) -> tuple[str, str] | None:
    """First failing column check (column, reason) or None."""
    for col, (rx, reason) in compiled["checks"].items():
        if col in values and not rx.fullmatch(values[col]):
            return col, f"{reason}: {values[col][:40]!r}"
    return None


def _shape_ok(values: dict[str, str], compiled) -> bool:
    return all(rx.fullmatch(values[col]) for col, rx in compiled["shape"].items() if col in values)


def _compile(spec: TableSpec):
    return {
        "checks": {c: (re.compile(rx), reason) for c, (rx, reason) in spec.checks.items()},
        "shape": {c: re.compile(rx) for c, rx in spec.shape.items()},
    }


def parse_table_bytes(data: bytes, spec: TableSpec, file_label: str) -> ParsedFile:
    """Parse the bytes of one FAERS table file (see module docstring)."""
    compiled = _compile(spec)
    data, enc_lines = _fix_encoding(data)
    if re.search(rb"\S", data) is None:  # empty or whitespace only (no full copy)
        empty = pa.table({c: pa.array([], pa.string()) for c in spec.columns} | {"_line": pa.array([], pa.int64())})
        return ParsedFile(table=empty, header=[], notes=["empty file"])
    if not data.endswith(b"\n"):
        data += b"\n"
    first_nl = data.find(b"\n")
    header_raw = data[:first_nl].decode("utf-8").lstrip("\ufeff").rstrip("\r")
    header = [h.strip().lower() for h in header_raw.split("$")]
    trailing = len(header) > 1 and header[-1] == ""
    if trailing:
        header = header[:-1]
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise InputError([(Location(file_label, 1), f"header lacks required column(s) {', '.join(missing)}; "
                           f"found {', '.join(header)}. Is this a FAERS {spec.name} file (2012Q4 or later)?")])
    ncols = len(header) + (1 if trailing else 0)
    names = header + (["_trailing"] if trailing else [])
    body = memoryview(data)[first_nl + 1 :]  # no copy
    nl, counts, blank = _scan_lines(body, first_nl + 1)
    starts = np.r_[0, nl[:-1] + 1] if nl.size else np.zeros(0, dtype=np.int64)
    n_lines = nl.size
    if not trailing and n_lines and not blank.all():
        arr = np.frombuffer(body, dtype=np.uint8)
        prev1 = arr[np.maximum(nl - 1, 0)]
        prev2 = arr[np.maximum(nl - 2, 0)]
        ends_dollar = (prev1 == _DOLLAR) | ((prev1 == 13) & (prev2 == _DOLLAR))
        trailing_lines = float(np.mean(((counts == ncols) & ends_dollar)[~blank]))
    else:
        trailing_lines = 0.0
    if trailing_lines > 0.5:
        # data lines end with a '$' the header lacks (older FAERS files): an always-empty extra field
        trailing = True
        ncols += 1
        names = names + ["_trailing"]
    good = (counts == ncols - 1) & ~blank
    bad_idx = np.flatnonzero(~good & ~blank)
    pf = ParsedFile(table=None, header=header)  # type: ignore[arg-type]
    pf.data_lines = int(n_lines - blank.sum())
    pf.encoding_repairs = len(enc_lines)
    if blank.any():
        pf.notes.append(f"{int(blank.sum())} blank line(s) skipped")

    # ---------------- fast path ----------------
    good_idx = np.flatnonzero(good)
    if bad_idx.size == 0:
        good_bytes = pa.py_buffer(body)
    else:
        segs = []
        prev = 0
        mvb = body
        # contiguous runs of good lines
        for i in bad_idx:
            s = int(starts[i])
            if s > prev:
                segs.append(mvb[prev:s])
            prev = int(nl[i]) + 1
        segs.append(mvb[prev:])
        good_bytes = b"".join(segs)
        # remove blank lines inside good_bytes: pyarrow skips empty lines by default
    table = _read_arrow(good_bytes, names) if good_idx.size else _empty(names)
    if table.num_rows != good_idx.size:
        raise RuntimeError(f"{file_label}: parsed {table.num_rows} rows, expected {good_idx.size}")
    table = table.append_column("_line", pa.array(good_idx + 2, pa.int64()))  # 1-based, header = line 1

    # ---------------- slow path ----------------
    recs: list[tuple[int, list[str]]] = []
    if bad_idx.size:
        text_lines = {}
        bad_set = set(bad_idx.tolist())
        i_iter = iter(sorted(bad_set))
        consumed: set[int] = set()

        def line_text(i: int) -> str:
            if i not in text_lines:
                text_lines[i] = bytes(body[int(starts[i]) : int(nl[i])]).decode("utf-8").rstrip("\r")
            return text_lines[i]

        for i in i_iter:
            if i in consumed:
                continue
            fields = line_text(i).split("$")
            lineno = i + 2
            if len(fields) < ncols:
                # broken line: join following *bad* lines while short
                j = i
                joined = fields
                while len(joined) < ncols and j + 1 < n_lines and (j + 1) in bad_set and counts[j + 1] < ncols - 1:
                    j += 1
                    nxt = line_text(j).split("$")
                    joined = joined[:-1] + [(joined[-1].rstrip() + " " + nxt[0].lstrip()).strip()] + nxt[1:]
                if len(joined) == ncols and j > i:
                    for k in range(i + 1, j + 1):
                        consumed.add(k)
                    pf.lines_joined += j - i
                    recs.append((lineno, joined))
                else:
                    pf.quarantined.append(Quarantined(lineno, None, f"too few fields ({len(fields)} of {ncols}) "
                                                      "and no following fragment completes the record",
                                                      line_text(i)[:500]))
                continue
            recs.extend(_split_long(fields, ncols, names, spec, compiled, lineno, pf, line_text(i)))

    slow_rows = []
    for lineno, fields in recs:
        values = dict(zip(names, fields, strict=True))
        if "_trailing" in values and values["_trailing"] != "":
            pf.quarantined.append(Quarantined(lineno, None, "text after the final '$'", "$".join(fields)[:500]))
            continue
        fail = _check_row(values, spec, compiled)
        if fail:
            pf.quarantined.append(Quarantined(lineno, fail[0], fail[1], "$".join(fields)[:500]))
            continue
        slow_rows.append((lineno, fields))

    # ---------------- column checks on the fast path ----------------
    bad_mask = None
    reasons: list[tuple[np.ndarray, str, str]] = []
    for col, (rx, reason) in spec.checks.items():
        if col not in table.column_names:
            continue
        ok = pc.match_substring_regex(table[col], f"^(?:{rx})$")
        ok = pc.fill_null(ok, False)
        fails = np.asarray(pc.invert(ok).to_numpy(zero_copy_only=False), dtype=bool)
        if fails.any():
            reasons.append((fails, col, reason))
            bad_mask = fails if bad_mask is None else (bad_mask | fails)
    if "_trailing" in table.column_names:
        fails = np.asarray(pc.not_equal(table["_trailing"], "").to_numpy(zero_copy_only=False), dtype=bool)
        if fails.any():
            reasons.append((fails, "_trailing", "text after the final '$'"))
            bad_mask = fails if bad_mask is None else (bad_mask | fails)
    if bad_mask is not None:
        seen = np.zeros(table.num_rows, dtype=bool)
        lines = table["_line"].to_numpy()
        for fails, col, reason in reasons:
            new = fails & ~seen
            seen |= fails
            vals = table[col].to_pylist() if new.any() else []
            for k in np.flatnonzero(new):
                raw = "$".join(str(table[c][int(k)].as_py()) for c in names)
                pf.quarantined.append(Quarantined(int(lines[k]), None if col == "_trailing" else col,
                                                  reason if col == "_trailing" else f"{reason}: {vals[k][:40]!r}",
                                                  raw[:500]))
        table = table.filter(pa.array(~bad_mask))

    if slow_rows:
        extra = {c: pa.array([f[j] for _, f in slow_rows], pa.string()) for j, c in enumerate(names)}
        extra["_line"] = pa.array([ln for ln, _ in slow_rows], pa.int64())
        table = pa.concat_tables([table, pa.table(extra)]).sort_by("_line")
    if "_trailing" in table.column_names:
        table = table.drop_columns(["_trailing"])
    # canonical columns: missing ones become empty strings, unknown ones are dropped (noted)
    unknown = [c for c in header if c not in spec.columns]
    if unknown:
        pf.notes.append(f"column(s) not in the FAERS {spec.name} layout ignored: {', '.join(unknown)}")
    cols = {}
    for c in spec.columns:
        cols[c] = table[c] if c in table.column_names else pa.array([""] * table.num_rows, pa.string())
    cols["_line"] = table["_line"]
    pf.table = pa.table(cols)
    pf.records = pf.table.num_rows + len(pf.quarantined)
    pf.quarantined.sort(key=lambda q: q.line)
    return pf


def _split_long(fields, ncols, names, spec, compiled, lineno, pf: ParsedFile, raw) -> list[tuple[int, list[str]]]:
    """Repair a line with too many fields: collapsed records first, then a '$' inside a value."""
    if len(fields) == ncols:
        return [(lineno, fields)]
    # collapsed: record 2 starts inside field ncols-1
    if len(fields) >= 2 * ncols - 1 and "caseid" in names and names.index("caseid") == 1:
        merged = fields[ncols - 1]
        caseid2 = fields[ncols]
        if caseid2.isdigit():
            for k in range(len(merged)):
                y = merged[k:]
                if y.isdigit() and y.startswith(caseid2) and len(y) > len(caseid2):
                    rec1 = fields[: ncols - 1] + [merged[:k]]
                    rec2 = [y] + fields[ncols:]
                    v1 = dict(zip(names, rec1, strict=True))
                    if _check_row(v1, spec, compiled) is None:
                        pf.records_split += 1
                        return [(lineno, rec1)] + _split_long(rec2, ncols, names, spec, compiled, lineno, pf, raw)
    if len(fields) < ncols:
        pf.quarantined.append(Quarantined(lineno, None, f"too few fields ({len(fields)} of {ncols}) after splitting "
                                          "collapsed records", raw[:500]))
        return []
    extra = len(fields) - ncols
    candidates = []
    for col in spec.free_text:
        if col not in names:
            continue
        c = names.index(col)
        cand = fields[:c] + ["$".join(fields[c : c + extra + 1])] + fields[c + extra + 1 :]
        v = dict(zip(names, cand, strict=True))
        if v.get("_trailing", "") == "" and _check_row(v, spec, compiled) is None and _shape_ok(v, compiled):
            candidates.append((col, cand))
    if len(candidates) > 1:
        # FAERS values do not begin or end with blanks: prefer the split that leaves fewest such
        def blanks(cand):
            return sum(1 for v in cand if v != v.strip())
        best = min(blanks(c) for _, c in candidates)
        candidates = [(col, c) for col, c in candidates if blanks(c) == best]
    distinct = {tuple(c) for _, c in candidates}
    if len(distinct) == 1:
        pf.dollar_repairs += 1
        return [(lineno, candidates[0][1])]
    reason = (f"{extra} extra '$' that fit no free-text column" if not candidates else
              f"{extra} extra '$' that could belong to any of {', '.join(c for c, _ in candidates)} (ambiguous)")
    pf.quarantined.append(Quarantined(lineno, None, reason, raw[:500]))
    return []


def _empty(names):
    return pa.table({c: pa.array([], pa.string()) for c in names})


def _read_arrow(buf, names) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(buf),
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter="$", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def parse_deleted_bytes(data: bytes, file_label: str) -> tuple[list[int], list[Quarantined], int]:
    """Case ids from a deleted-cases list (one per line, optional header, optional '$' fields).
    Returns (caseids, quarantined lines, data lines read)."""
    text, _ = _fix_encoding(data.replace(b"\r\n", b"\n"))
    ids: list[int] = []
    bad: list[Quarantined] = []
    read = 0
    for i, line in enumerate(text.decode("utf-8").split("\n"), start=1):
        s = line.strip().lstrip("\ufeff")
        if not s:
            continue
        first = s.split("$")[0].strip()
        if first.isdigit():
            ids.append(int(first))
            read += 1
        elif i == 1:
            continue  # header
        else:
            read += 1
            bad.append(Quarantined(i, "caseid", f"not a case id: {first[:40]!r}", s[:500]))
    return ids, bad, read

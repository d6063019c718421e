"""Parse one FAERS ``$``-delimited file as a stream, repairing what can be repaired and quarantining
the rest.

:class:`TableParser` takes the file's bytes in chunks of any size (``read_member`` gives 32 MiB) and
yields :class:`ParsedBlock`\\ s — an Arrow table of complete records (integers typed, source line
numbers kept) and the block's quarantined lines — so no file is ever held whole in memory; its
:class:`FileAccount` adds up the counts.  Per block:

Fast path: delimiters, carriage returns and line ends are located with numpy on the raw bytes;
lines with the expected number of ``$`` (the overwhelming majority) are parsed by pyarrow's C++
CSV reader and checked with Arrow kernels.  Slow path: the few other lines are repaired in Python,
each repair recorded:

* **non-UTF-8 bytes** — a line that is not valid UTF-8 is decoded as Windows-1252 (Latin-1
  if that fails): the FAERS files mix encodings.  Counted as ``encoding_repairs``.
* **broken line** — a record split over several lines (a newline inside a value): joined
  with a space when the pieces together have exactly the expected number of fields.  Found in
  one pass over prefix sums of the ``$`` counts (no re-joining from every start line).
* **collapsed lines** — two records on one line (a lost newline): split where the second
  record's ``primaryid`` begins; accepted only if its next field, ``caseid``, is a prefix
  of that ``primaryid`` (FAERS ``primaryid`` = ``caseid`` followed by ``caseversion``).
* **'$' inside a value** — extra fields merged back into the one free-text column for which
  every column check and shape check then passes; if none or several do, the line is
  quarantined as ambiguous.

A carriage return inside a line (not just before its line feed) quarantines the line: it is not a
record boundary FAERS uses, and reading it as one would shift every later field.  A file whose
lines end in CR alone (no line feed anywhere in its first chunk) is read with CR as the line end.

Every record then passes the table's checks (:mod:`faers_format`: integer columns are ASCII whole
numbers within the signed 64-bit range) or goes to the quarantine with file, line, column and
reason.  Counts reconcile: ``records = loaded + quarantined`` and
``records = data lines − lines joined into a previous record + extra records split out``.

A header naming a column twice, a header without the required columns, and a line longer than
``max_line_bytes`` are errors (:class:`~ketaweight.core.errors.InputError`, line 1 or the line).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.display import one_line
from ketaweight.signals.faers_format import TableSpec

__all__ = ["ParsedBlock", "FileAccount", "ParsedFile", "Quarantined", "TableParser", "parse_table_bytes",
           "DeletedParser", "INT64_MAX"]

INT64_MAX = 2**63 - 1
_INT64_MAX_TEXT = str(INT64_MAX)
_NL, _CR, _DOLLAR = 10, 13, 36
_DIGITS = re.compile(r"[0-9]+")
_RAW_CHARS = 500  # characters of a quarantined line kept with it


@dataclass(frozen=True)
class Quarantined:
    """A line (or record) that was not loaded: 1-based line, the column at fault if one, why, the text."""

    line: int
    column: str | None
    reason: str
    raw: str


@dataclass
class FileAccount:
    """What a file held and what became of it (adds up over its blocks)."""

    header: list[str] = field(default_factory=list)
    data_lines: int = 0
    records: int = 0
    loaded: int = 0
    quarantined: int = 0
    encoding_repairs: int = 0
    lines_joined: int = 0
    records_split: int = 0
    dollar_repairs: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedBlock:
    """Complete records of one stretch of a file (canonical columns and ``_line``) and its quarantine."""

    table: pa.Table
    quarantined: list[Quarantined]


@dataclass
class ParsedFile:
    """A whole file parsed in memory (:func:`parse_table_bytes`): the records in line order, every
    quarantined line, and the account."""

    table: pa.Table
    quarantined: list[Quarantined]
    account: FileAccount

    @property
    def loaded(self) -> int:
        return self.table.num_rows

    @property
    def records(self) -> int:
        return self.account.records


def _fix_encoding(data: bytes) -> tuple[bytes, int]:
    """``data`` as valid UTF-8, each invalid line re-decoded as cp1252 (or latin-1): the FAERS files
    mix encodings.  Returns the (possibly new) bytes and the number of lines repaired.  One decoding
    pass when the bytes are valid; otherwise one more (surrogate-escaped) pass, so the cost stays
    linear however many lines are bad."""
    try:
        data.decode("utf-8")
        return data, 0
    except UnicodeDecodeError:
        pass
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    repaired = 0
    for i, line in enumerate(lines):
        if _SURROGATE.search(line):
            raw = line.encode("utf-8", "surrogateescape")
            try:
                lines[i] = raw.decode("cp1252")
            except UnicodeDecodeError:
                lines[i] = raw.decode("latin-1")
            repaired += 1
    return "\n".join(lines).encode("utf-8"), repaired


_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class _Lines:
    """Per line of a block that ends with '\\n': start and end (the '\\n') offsets, '$' count, blank
    (empty or a lone CR), a CR inside the line, ends with '$' (before an optional CR)."""

    starts: np.ndarray
    ends: np.ndarray
    dollars: np.ndarray
    blank: np.ndarray
    inner_cr: np.ndarray
    ends_dollar: np.ndarray

    @classmethod
    def scan(cls, data: bytes) -> _Lines:
        arr = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(arr == _NL)
        starts = np.r_[0, ends[:-1] + 1] if ends.size else np.zeros(0, np.int64)
        # '$' per line: how many '$' lie before each line end, differenced
        before = np.searchsorted(np.flatnonzero(arr == _DOLLAR), ends)
        dollars = np.diff(np.r_[0, before])
        cr = np.flatnonzero(arr == _CR)
        lone = cr[arr[np.minimum(cr + 1, arr.size - 1)] != _NL] if cr.size else cr
        inner_cr = np.zeros(ends.size, bool)
        inner_cr[np.searchsorted(ends, lone)] = True
        length = ends - starts
        last = arr[np.maximum(ends - 1, 0)]
        before_last = arr[np.maximum(ends - 2, 0)]
        blank = (length == 0) | ((length == 1) & (last == _CR))
        ends_dollar = ((length >= 1) & (last == _DOLLAR)) | ((length >= 2) & (last == _CR) & (before_last == _DOLLAR))
        return cls(starts, ends, dollars, blank, inner_cr, ends_dollar)


class TableParser:
    """Parse one FAERS table file from its chunks (see the module docstring).

    >>> p = TableParser(TABLES["OUTC"], "OUTC23Q1.txt")             # doctest: +SKIP
    >>> for block in p.blocks(read_member(quarter, member)): ...    # doctest: +SKIP
    >>> p.account.loaded, p.account.quarantined                      # doctest: +SKIP
    """

    def __init__(self, spec: TableSpec, label: str, *, max_line_bytes: int = 16 * 2**20,
                 max_carry_bytes: int = 2**20) -> None:
        self.spec = spec
        self.label = label
        self.max_line_bytes = max_line_bytes
        """A line longer than this (bytes) is an error: FAERS lines are a few hundred bytes."""
        self.max_carry_bytes = max_carry_bytes
        """Short lines at the end of a block wait for the next block (a record broken across the
        boundary) only up to this many bytes."""
        self.account = FileAccount()
        self._checks = {c: (re.compile(rx, re.ASCII), f"^(?:{rx})$", reason) for c, (rx, reason) in spec.checks.items()}
        self._shape = {c: re.compile(rx, re.ASCII) for c, rx in spec.shape.items()}
        self._names: list[str] | None = None  # header names (+ "_trailing")
        self._ncols = 0
        self._trailing_decided = False
        self._cr_only = False
        self._leading_blank = False
        self._blank = 0
        self._next_line = 1  # the line number of the next line to parse

    # ------------------------------------------------------------------ the stream

    def blocks(self, chunks: Iterable[bytes]) -> Iterator[ParsedBlock]:
        """Parsed blocks of complete lines, in file order; ``account`` is complete when this ends."""
        pending = b""
        first = True
        for chunk in chunks:
            if not chunk:
                continue
            if first:
                first = False
                self._cr_only = b"\n" not in chunk and b"\r" in chunk
            if self._cr_only:
                chunk = chunk.replace(b"\r", b"\n")
            buf = pending + chunk if pending else chunk
            cut = buf.rfind(b"\n")
            if cut < 0:
                pending = buf
                self._check_line_length(pending)
                continue
            rest = buf[cut + 1:]
            self._check_line_length(rest)
            carry = yield from self._process(buf[: cut + 1], final=False)
            pending = carry + rest
        if pending:
            yield from self._process(pending if pending.endswith(b"\n") else pending + b"\n", final=True)
        if self._names is None:
            self.account.notes.append("empty file")
        if self._blank:
            self.account.notes.append(f"{self._blank:,} blank line(s) skipped")
        if self._cr_only:
            self.account.notes.append("lines end in CR alone (old Mac style); read as line ends")

    def _check_line_length(self, pending: bytes) -> None:
        if len(pending) > self.max_line_bytes:
            raise InputError([(Location(self.label, self._next_line), f"a line longer than "
                               f"{self.max_line_bytes:,} bytes: not a FAERS text file")])

    def _process(self, data: bytes, *, final: bool) -> Iterator[ParsedBlock]:
        """Parse complete lines ``data`` (ending in '\\n'); returns the bytes held back for the next block."""
        if self._names is None:
            data = self._header(data)
            if not data:
                return b""
        block, carry = self._block(data, final=final)
        if block is not None:
            yield block
        return carry

    # ------------------------------------------------------------------ header

    def _header(self, data: bytes) -> bytes:
        """Read the header from the first line; returns the rest.  Leading blank content is dropped while
        nothing else follows (the file may be empty); anything after it is an error (line 1 must be the
        header)."""
        if re.search(rb"\S", data) is None:
            self._leading_blank = True
            return b""
        first_nl = data.find(b"\n")
        raw, _ = _fix_encoding(data[:first_nl])
        header_raw = raw.decode("utf-8").lstrip("\ufeff").rstrip("\r")
        if self._leading_blank or not header_raw.strip():
            raise InputError([(Location(self.label, 1), "the first line (the header row) is empty")])
        header = [h.strip().lower() for h in header_raw.split("$")]
        trailing = len(header) > 1 and header[-1] == ""
        if trailing:
            header = header[:-1]
        seen: dict[str, int] = {}
        for i, h in enumerate(header, start=1):
            if h in seen:
                what = f"column {one_line(repr(h), 80)}" if h else "an empty column name"
                raise InputError([(Location(self.label, 1, one_line(h, 80) or None),
                                   f"{what} appears twice in the header (fields {seen[h]} and {i}); which one holds "
                                   "the data is unclear")])
            seen[h] = i
        missing = [c for c in self.spec.required if c not in header]
        if missing:
            raise InputError([(Location(self.label, 1), f"header lacks required column(s) {', '.join(missing)}; "
                               f"found {one_line(', '.join(header))}. Is this a FAERS {self.spec.name} file "
                               "(2012Q4 or later)?")])
        unknown = [c for c in header if c not in self.spec.columns]
        if unknown:
            self.account.notes.append(f"column(s) not in the FAERS {self.spec.name} layout ignored: "
                                      f"{one_line(', '.join(unknown))}")
        self.account.header = header
        self._names = header + (["_trailing"] if trailing else [])
        self._ncols = len(self._names)
        self._trailing_decided = trailing
        self._next_line = 2
        return data[first_nl + 1:]

    # ------------------------------------------------------------------ one block

    def _block(self, data: bytes, *, final: bool) -> tuple[ParsedBlock | None, bytes]:
        data, repaired = _fix_encoding(data)
        self.account.encoding_repairs += repaired
        ln = _Lines.scan(data)
        if not self._trailing_decided and ln.ends.size and not ln.blank.all():
            # data lines end with a '$' the header lacks (older FAERS files): an always-empty extra field
            rows = ~ln.blank
            if float(np.mean(((ln.dollars == self._ncols) & ln.ends_dollar)[rows])) > 0.5:
                self._names = [*self._names, "_trailing"]  # type: ignore[misc]
                self._ncols += 1
            self._trailing_decided = True
        ncols = self._ncols
        good = (ln.dollars == ncols - 1) & ~ln.blank & ~ln.inner_cr
        short = (ln.dollars < ncols - 1) & ~ln.blank & ~ln.inner_cr
        carry = b""
        n = ln.ends.size
        if not final and n:
            # a record broken across the block boundary: hold back the trailing run of short lines
            tail = n - int(np.argmin(short[::-1])) if not short.all() else 0  # first line of the trailing run
            if tail < n and len(data) - int(ln.starts[tail]) <= self.max_carry_bytes:
                carry = data[int(ln.starts[tail]):]
                data = data[: int(ln.starts[tail])]
                ln = _Lines(*(a[:tail] for a in (ln.starts, ln.ends, ln.dollars, ln.blank, ln.inner_cr,
                                                 ln.ends_dollar)))
                good, short, n = good[:tail], short[:tail], tail
        first_line = self._next_line
        self._next_line += n
        if n == 0:
            return None, carry
        acc = self.account
        blanks = int(ln.blank.sum())
        self._blank += blanks
        acc.data_lines += n - blanks
        quarantined: list[Quarantined] = []
        table = self._fast(data, ln, good, first_line, quarantined)
        slow = self._slow(data, ln, good, short, first_line, quarantined)
        if slow is not None:
            table = pa.concat_tables([table, slow])
        acc.records += table.num_rows + len(quarantined)
        acc.loaded += table.num_rows
        acc.quarantined += len(quarantined)
        return ParsedBlock(table=table, quarantined=quarantined), carry

    def _text(self, data: bytes, ln: _Lines, i: int) -> str:
        return data[int(ln.starts[i]): int(ln.ends[i])].decode("utf-8").rstrip("\r")

    def _fast(self, data: bytes, ln: _Lines, good: np.ndarray, first_line: int,
              quarantined: list[Quarantined]) -> pa.Table:
        """Lines with the expected number of '$': pyarrow parses them, Arrow kernels check them."""
        names = self._names
        assert names is not None
        good_idx = np.flatnonzero(good)
        if good_idx.size == 0:
            return self._canonical(_empty(names), np.zeros(0, np.int64))
        if good_idx.size == ln.ends.size:
            buf = pa.py_buffer(data)
        else:
            # contiguous runs of good lines, joined
            edges = np.flatnonzero(np.diff(np.r_[0, good.view(np.int8), 0]))
            buf = b"".join(data[int(ln.starts[a]): int(ln.ends[b - 1]) + 1] for a, b in zip(edges[::2], edges[1::2],
                                                                                         strict=True))
        table = _read_arrow(buf, names)
        if table.num_rows != good_idx.size:  # the line scan and pyarrow disagree: a bug, never bad input
            raise RuntimeError(f"{self.label}: parsed {table.num_rows} rows, expected {good_idx.size}")
        lines = good_idx + first_line
        fails_any = np.zeros(table.num_rows, bool)
        for col, reason, ok in self._column_checks(table):
            new = ~ok & ~fails_any
            fails_any |= ~ok
            if new.any():
                vals = table[col].filter(pa.array(new)).to_pylist() if col != "_trailing" else None
                for j, k in enumerate(np.flatnonzero(new)):
                    why = reason if vals is None else f"{reason}: {vals[j][:40]!r}"
                    quarantined.append(Quarantined(int(lines[k]), None if col == "_trailing" else col, why,
                                                   self._text(data, ln, int(good_idx[k]))[:_RAW_CHARS]))
        if fails_any.any():
            keep = ~fails_any
            table = table.filter(pa.array(keep))
            lines = lines[keep]
        return self._canonical(table, lines)

    def _column_checks(self, table: pa.Table) -> Iterator[tuple[str, str, np.ndarray]]:
        """(column, reason, ok mask) for every check, in the order the slow path applies them."""
        if "_trailing" in table.column_names:
            ok = pc.equal(table["_trailing"], "")
            yield "_trailing", "text after the final '$'", np.asarray(ok.to_numpy(zero_copy_only=False), bool)
        for col in self.spec.integer:
            if col in table.column_names:
                ok, big = _integer_ok(table[col])
                yield col, "not a whole number", ok | big
                yield col, "a whole number beyond the 64-bit range", ~big
        for col, (_, rx, reason) in self._checks.items():
            if col in table.column_names:
                ok = pc.fill_null(pc.match_substring_regex(table[col], rx), False)
                yield col, reason, np.asarray(ok.to_numpy(zero_copy_only=False), bool)

    def _canonical(self, table: pa.Table, lines: np.ndarray) -> pa.Table:
        """Canonical columns in layout order (integers as int64, text as string, absent ones null), ``_line``."""
        cols = {}
        for c in self.spec.columns:
            if c in table.column_names:
                cols[c] = pc.cast(table[c], pa.int64()) if c in self.spec.integer else table[c]
            else:
                cols[c] = pa.nulls(table.num_rows, pa.int64() if c in self.spec.integer else pa.string())
        cols["_line"] = pa.array(lines, pa.int64())
        return pa.table(cols)

    # ------------------------------------------------------------------ slow path

    def _slow(self, data: bytes, ln: _Lines, good: np.ndarray, short: np.ndarray, first_line: int,
              quarantined: list[Quarantined]) -> pa.Table | None:
        """Repair or quarantine the lines the fast path could not take."""
        bad_idx = np.flatnonzero(~good & ~ln.blank)
        if bad_idx.size == 0:
            return None
        ncols, names, acc = self._ncols, self._names, self.account
        assert names is not None
        # joins: within a run of consecutive short lines, the record starting at line i ends at the first
        # line j where the '$' counts of i..j reach ncols − 1; it is a record if they equal it exactly
        prefix = np.r_[0, np.cumsum(np.where(short, ln.dollars, 0))]
        target = prefix[:-1] + ncols - 1
        end_at = np.searchsorted(prefix, target, side="left") - 1  # last line j with prefix[j+1] ≥ target
        run_end = _run_ends(short)
        recs: list[tuple[int, list[str]]] = []
        skip_to = -1
        for i in bad_idx.tolist():
            if i <= skip_to:
                continue
            lineno = first_line + i
            if ln.inner_cr[i]:
                quarantined.append(Quarantined(lineno, None, "a carriage return (CR) inside the line",
                                               self._text(data, ln, i)[:_RAW_CHARS]))
                continue
            if short[i]:
                j = int(end_at[i])
                if j <= run_end[i] and j > i and prefix[j + 1] - prefix[i] == ncols - 1:
                    joined = self._text(data, ln, i).split("$")
                    for k in range(i + 1, j + 1):
                        nxt = self._text(data, ln, k).split("$")
                        joined = joined[:-1] + [(joined[-1].rstrip() + " " + nxt[0].lstrip()).strip()] + nxt[1:]
                    acc.lines_joined += j - i
                    recs.append((lineno, joined))
                    skip_to = j
                else:
                    fields = int(ln.dollars[i]) + 1
                    quarantined.append(Quarantined(lineno, None, f"too few fields ({fields} of {ncols}) and no "
                                                   "following fragment completes the record",
                                                   self._text(data, ln, i)[:_RAW_CHARS]))
                continue
            text = self._text(data, ln, i)
            recs.extend(self._split_long(text.split("$"), lineno, text, quarantined))
        rows: list[tuple[int, list[str]]] = []
        for lineno, fields in recs:
            values = dict(zip(names, fields, strict=True))
            if values.get("_trailing", "") != "":
                quarantined.append(Quarantined(lineno, None, "text after the final '$'",
                                               "$".join(fields)[:_RAW_CHARS]))
                continue
            fail = self._check_row(values)
            if fail:
                quarantined.append(Quarantined(lineno, fail[0], fail[1], "$".join(fields)[:_RAW_CHARS]))
                continue
            rows.append((lineno, fields))
        if not rows:
            return None
        table = pa.table({c: pa.array([f[j] for _, f in rows], pa.string()) for j, c in enumerate(names)})
        return self._canonical(table, np.array([ln for ln, _ in rows], np.int64))

    def _check_row(self, values: dict[str, str]) -> tuple[str, str] | None:
        """First failing check (column, reason) of one record, in the fast path's order, or None."""
        for col in self.spec.integer:
            if col in values:
                v = values[col]
                if not _DIGITS.fullmatch(v):
                    return col, f"not a whole number: {v[:40]!r}"
                if int(v) > INT64_MAX:
                    return col, f"a whole number beyond the 64-bit range: {v[:40]!r}"
        for col, (rx, _, reason) in self._checks.items():
            if col in values and not rx.fullmatch(values[col]):
                return col, f"{reason}: {values[col][:40]!r}"
        return None

    def _shape_ok(self, values: dict[str, str]) -> bool:
        return all(rx.fullmatch(values[col]) for col, rx in self._shape.items() if col in values)

    def _split_long(self, fields: list[str], lineno: int, raw: str,
                    quarantined: list[Quarantined]) -> list[tuple[int, list[str]]]:
        """Repair a line with too many fields: collapsed records first, then a '$' inside a value."""
        ncols, names, out = self._ncols, self._names, []
        assert names is not None
        while len(fields) >= 2 * ncols - 1 and "caseid" in names and names.index("caseid") == 1:
            # collapsed: record 2's primaryid starts inside field ncols-1 (a primaryid has ≤ 19 digits)
            merged, caseid2 = fields[ncols - 1], fields[ncols]
            split = None
            if _DIGITS.fullmatch(caseid2):
                tail = len(merged) - _trailing_digits(merged)
                for k in range(max(tail, len(merged) - 19), len(merged)):
                    y = merged[k:]
                    if y.startswith(caseid2) and len(y) > len(caseid2):
                        rec1 = fields[: ncols - 1] + [merged[:k]]
                        if self._check_row(dict(zip(names, rec1, strict=True))) is None:
                            split = (rec1, [y] + fields[ncols:])
                            break
            if split is None:
                break
            self.account.records_split += 1
            out.append((lineno, split[0]))
            fields = split[1]
        if out and len(fields) < ncols:
            quarantined.append(Quarantined(lineno, None, f"too few fields ({len(fields)} of {ncols}) after "
                                           "splitting collapsed records", raw[:_RAW_CHARS]))
            return out
        if len(fields) == ncols:
            return out + [(lineno, fields)]
        extra = len(fields) - ncols
        candidates = []
        for col in self.spec.free_text:
            if col not in names:
                continue
            c = names.index(col)
            cand = fields[:c] + ["$".join(fields[c: c + extra + 1])] + fields[c + extra + 1:]
            v = dict(zip(names, cand, strict=True))
            if v.get("_trailing", "") == "" and self._check_row(v) is None and self._shape_ok(v):
                candidates.append((col, cand))
        if len(candidates) > 1:
            # FAERS values do not begin or end with blanks: prefer the split that leaves fewest such
            def blanks(cand: list[str]) -> int:
                return sum(1 for v in cand if v != v.strip())
            best = min(blanks(c) for _, c in candidates)
            candidates = [(col, c) for col, c in candidates if blanks(c) == best]
        if len({tuple(c) for _, c in candidates}) == 1:
            self.account.dollar_repairs += 1
            return out + [(lineno, candidates[0][1])]
        reason = (f"{extra} extra '$' that fit no free-text column" if not candidates else
                  f"{extra} extra '$' that could belong to any of {', '.join(c for c, _ in candidates)} (ambiguous)")
        quarantined.append(Quarantined(lineno, None, reason, raw[:_RAW_CHARS]))
        return out


def _trailing_digits(s: str) -> int:
    """How many characters at the end of ``s`` are ASCII digits."""
    n = 0
    for ch in reversed(s):
        if "0" <= ch <= "9":
            n += 1
        else:
            break
    return n


def _run_ends(mask: np.ndarray) -> np.ndarray:
    """For each index, the last index of the run of True values it belongs to (itself if False)."""
    n = mask.size
    idx = np.arange(n)
    # the next False at or after i, minus one
    nxt = np.where(~mask, idx, n)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    return np.where(mask, nxt - 1, idx)


def _integer_ok(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(ASCII whole number, whole number beyond int64) masks of a string column."""
    digits = pc.fill_null(pc.ascii_is_decimal(col), False)
    trimmed = pc.utf8_ltrim(col, characters="0")
    length = pc.binary_length(trimmed)
    big = pc.and_(digits, pc.or_(pc.greater(length, 19),
                                 pc.and_(pc.equal(length, 19), pc.greater(trimmed, _INT64_MAX_TEXT))))
    big = pc.fill_null(big, False)
    return (np.asarray(digits.to_numpy(zero_copy_only=False), bool) & ~np.asarray(big.to_numpy(zero_copy_only=False),
                                                                                  bool),
            np.asarray(big.to_numpy(zero_copy_only=False), bool))


def _empty(names: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in names})


def _read_arrow(buf, names: list[str]) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(buf),
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter="$", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def parse_table_bytes(data: bytes, spec: TableSpec, file_label: str) -> ParsedFile:
    """Parse the whole bytes of one FAERS table file in memory (tests, small files): the records in
    line order, every quarantined line and the account."""
    parser = TableParser(spec, file_label)
    blocks = list(parser.blocks([data]))
    tables = [b.table for b in blocks]
    table = pa.concat_tables(tables).sort_by("_line") if tables else parser._canonical(
        _empty(list(spec.columns)), np.zeros(0, np.int64))
    quarantined = sorted((q for b in blocks for q in b.quarantined), key=lambda q: q.line)
    return ParsedFile(table=table, quarantined=quarantined, account=parser.account)


class DeletedParser:
    """Case ids from a deleted-cases list (one per line, an optional header, optional '$' fields), as a
    stream: :meth:`blocks` yields (case ids, quarantined lines) per chunk; ``read`` counts data lines."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.read = 0
        self.loaded = 0
        self.quarantined = 0

    def blocks(self, chunks: Iterable[bytes]) -> Iterator[tuple[list[int], list[Quarantined]]]:
        pending, lineno = b"", 0
        for chunk in itertools.chain(chunks, [b"\n"]):
            buf = pending + chunk
            cut = buf.rfind(b"\n")
            if cut < 0:
                pending = buf
                continue
            pending = buf[cut + 1:]
            text, _ = _fix_encoding(buf[: cut + 1].replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
            ids: list[int] = []
            bad: list[Quarantined] = []
            for line in text.decode("utf-8").split("\n")[:-1]:
                lineno += 1
                s = line.strip().lstrip("\ufeff")
                if not s:
                    continue
                first = s.split("$")[0].strip()
                if _DIGITS.fullmatch(first) and int(first) <= INT64_MAX:
                    ids.append(int(first))
                    self.read += 1
                elif lineno == 1:
                    continue  # header
                else:
                    self.read += 1
                    why = "a case id beyond the 64-bit range" if _DIGITS.fullmatch(first) else "not a case id"
                    bad.append(Quarantined(lineno, "caseid", f"{why}: {first[:40]!r}", s[:_RAW_CHARS]))
            self.loaded += len(ids)
            self.quarantined += len(bad)
            if ids or bad:
                yield ids, bad

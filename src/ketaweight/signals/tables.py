"""Count tables for disproportionality: from a ready contingency table or from report-level rows.

A :class:`CountTable` holds, in unique reports, every drug–event cell with ``n ≥ 1`` (the
cells the MGPS prior is fitted to), the drug and event margins, the total ``N``, and the
stratum margins when stratified, so that ``a, b, c, d`` and ``E`` can be given for any pair —
including pairs never reported together (``a = 0``).

Drugs and events are held as integer codes into sorted name lists, cells sorted by
(drug, event): tables with millions of cells stay compact, lookups are binary searches, and the
same inputs give the same table — cell for cell, in the same order — whatever the number of
threads that counted them (the prior fit sums over the cells in this order).

Every source names drugs and events through the same two functions that requested names go
through (:meth:`CountTable.drug_key`, :func:`~ketaweight.signals.mapping.clean_term`): a drug
named ``"St. John's Wort"`` in a long table and ``--drug "st. john's wort"`` on the command line
meet on one key.

Sources:

* :func:`from_contingency` — a matrix of counts, rows events and columns drugs, as the
  ``mddc`` package ships (``statin49`` …; "Other" column and last row "Other AE" hold the
  rest of the database).  Its counts are cell counts, so a term group is the *sum* of its
  rows (an upper bound on unique reports; flagged ``approximate``).
* :func:`ketaweight.signals.counting.from_long` — rows ``(report_id, drug, event[, stratum])``
  as openEBGM's ``processRaw`` takes, and :func:`~ketaweight.signals.counting.from_relations`, the
  same from DuckDB relations (the FAERS store); counted in unique reports, in DuckDB SQL.

Expected counts: ``E = n_drug·n_event/N``, or stratified (DuMouchel 1999)
``E = Σ_s n_drug,s·n_event,s/N_s``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.display import one_line
from ketaweight.signals.mapping import DrugMap, TermGroup, clean_name, clean_term

__all__ = ["CountTable", "PairCounts", "from_contingency", "read_contingency_csv", "drug_key_function",
           "expected_counts", "read_csv_text"]


@dataclass(frozen=True)
class PairCounts:
    """The 2×2 table of one pair in unique reports (a: drug and event; b: drug, not event; c: event,
    not drug; d: neither) and the expected count E."""

    drug: str
    event: str
    a: int
    b: int
    c: int
    d: int
    e: float

    @property
    def n(self) -> int:
        return self.a


def drug_key_function(drug_map: DrugMap | None) -> Callable[[str | None], str]:
    """How a source's drug names become keys: the drug map's ingredient (brand and salt names mapped,
    see :meth:`DrugMap.key`), or without a map the cleaned name."""
    if drug_map is None:
        return clean_name
    return lambda name: drug_map.key(name)[0]


@dataclass(frozen=True, eq=False)
class CountTable:
    """Counts in unique reports for every observed drug–event cell, with margins (see the module docstring).

    ``drugs`` and ``events`` are sorted name lists (``events``: the ``n_terms`` single terms, then the
    term-group keys); ``cell_*`` arrays describe the cells with n ≥ 1, sorted by (drug, event) code.
    """

    drugs: tuple[str, ...]
    events: tuple[str, ...]
    n_terms: int
    cell_drug: np.ndarray
    cell_event: np.ndarray
    cell_n: np.ndarray
    cell_e: np.ndarray
    drug_n: np.ndarray
    """reports per drug code (with at least one event)."""
    event_n: np.ndarray
    """reports per event code (with at least one drug)."""
    n_reports: int
    source: str
    strata: str | None = None
    strata_labels: tuple[str, ...] | None = None
    drug_by_stratum: np.ndarray | None = None
    """(drugs × strata) report counts when stratified."""
    event_by_stratum: np.ndarray | None = None
    n_by_stratum: np.ndarray | None = None
    approximate_groups: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    groups: dict[str, TermGroup] = field(default_factory=dict)
    drug_map: DrugMap | None = None
    """The map the source's drug names went through (None: names only cleaned)."""

    def drug_key(self, name: str | None) -> str:
        """The key a drug name has in this table (the same function the source's names went through)."""
        return drug_key_function(self.drug_map)(name)

    # ---- views ------------------------------------------------------------------------

    @cached_property
    def cells(self) -> pd.DataFrame:
        """One row per cell with n ≥ 1: drug, event (categoricals), kind ('term' or 'group'), n, e."""
        return pd.DataFrame({
            "drug": pd.Categorical.from_codes(self.cell_drug, categories=list(self.drugs)),
            "event": pd.Categorical.from_codes(self.cell_event, categories=list(self.events)),
            "kind": np.where(self.cell_event < self.n_terms, "term", "group"),
            "n": self.cell_n, "e": self.cell_e})

    @cached_property
    def drug_reports(self) -> dict[str, int]:
        return dict(zip(self.drugs, self.drug_n.tolist(), strict=True))

    @cached_property
    def event_reports(self) -> dict[str, int]:
        return dict(zip(self.events, self.event_n.tolist(), strict=True))

    @property
    def prior_cells(self) -> pd.DataFrame:
        """The cells the prior is fitted to: single terms (not groups) with n ≥ 1 (columns n, e)."""
        keep = (self.cell_event < self.n_terms) & (self.cell_n >= 1)
        return pd.DataFrame({"n": self.cell_n[keep], "e": self.cell_e[keep]})

    # ---- lookups ----------------------------------------------------------------------

    @cached_property
    def _drug_code(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.drugs)}

    @cached_property
    def _event_code(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.events)}

    @cached_property
    def _cell_key(self) -> np.ndarray:
        return self.cell_drug.astype(np.int64) * max(len(self.events), 1) + self.cell_event

    def _cell(self, dc: int, ec: int) -> int | None:
        key = dc * max(len(self.events), 1) + ec
        i = int(np.searchsorted(self._cell_key, key))
        return i if i < self._cell_key.size and self._cell_key[i] == key else None

    def expected(self, drug: str, event: str) -> float:
        """E for any pair (also one never reported together)."""
        if self.n_reports == 0:
            return float("nan")
        dc, ec = self._drug_code.get(drug), self._event_code.get(event)
        if dc is None or ec is None:
            return 0.0
        if self.drug_by_stratum is None:
            return float(self.drug_n[dc]) * float(self.event_n[ec]) / self.n_reports
        return float(expected_counts(self.drug_by_stratum, self.event_by_stratum, self.n_by_stratum,
                                     np.array([dc]), np.array([ec]))[0])

    def pair(self, drug: str, event: str) -> PairCounts:
        """The 2×2 table and E of one pair."""
        dc, ec = self._drug_code.get(drug), self._event_code.get(event)
        hit = self._cell(dc, ec) if dc is not None and ec is not None else None
        a = int(self.cell_n[hit]) if hit is not None else 0
        e = float(self.cell_e[hit]) if hit is not None else self.expected(drug, event)
        r = int(self.drug_n[dc]) if dc is not None else 0
        c_ = int(self.event_n[ec]) if ec is not None else 0
        return PairCounts(drug, event, a, r - a, c_ - a, self.n_reports - r - c_ + a, e)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "reports": self.n_reports,
            "drugs": len(self.drugs),
            "events": self.n_terms,
            "cells_with_reports": int(((self.cell_event < self.n_terms) & (self.cell_n >= 1)).sum()),
            "stratified_by": self.strata,
            "approximate_groups": self.approximate_groups,
            "notes": list(self.notes),
        }


def expected_counts(drug_by_stratum: np.ndarray, event_by_stratum: np.ndarray, n_by_stratum: np.ndarray,
                    dc: np.ndarray, ec: np.ndarray, *, chunk: int = 1 << 18) -> np.ndarray:
    """Stratified E = Σ_s n_drug,s·n_event,s/N_s for the pairs (dc[i], ec[i]); in chunks, in a fixed order."""
    out = np.empty(dc.size, float)
    inv = np.divide(1.0, n_by_stratum, out=np.zeros(n_by_stratum.shape, float), where=n_by_stratum > 0)
    for s in range(0, dc.size, chunk):
        d = drug_by_stratum[dc[s: s + chunk]].astype(float)
        e = event_by_stratum[ec[s: s + chunk]].astype(float)
        out[s: s + chunk] = (d * e) @ inv
    return out


def _from_dense(values: np.ndarray, events: list[str], drugs: list[str], *, groups: dict[str, TermGroup],
                source: str, drug_map: DrugMap | None, notes: list[str]) -> CountTable:
    """A count table from a dense (events × drugs) matrix of unique-report cell counts whose
    labels are already keys (possibly repeated: repeated labels are summed)."""
    ev_names, ev_inv = np.unique(np.array(events, dtype=object), return_inverse=True)
    dr_names, dr_inv = np.unique(np.array(drugs, dtype=object), return_inverse=True)
    merged = np.zeros((ev_names.size, dr_names.size), np.int64)
    np.add.at(merged, (ev_inv[:, None], dr_inv[None, :]), values)
    n_total = int(merged.sum())
    term_m = merged.sum(axis=1)
    drug_m = merged.sum(axis=0)
    group_keys = sorted(k for k, g in groups.items() if any(e in g.terms for e in ev_names))
    gsums = [merged[[i for i, e in enumerate(ev_names) if e in groups[k].terms]].sum(axis=0) for k in group_keys]
    full = np.vstack([merged, *([np.array(gsums)] if gsums else [])])  # events (terms, then groups) × drugs
    jj, ii = np.nonzero(full.T)  # sorted by drug, then event
    n_terms = ev_names.size
    event_m = np.r_[term_m, np.array([g.sum() for g in gsums], np.int64)] if gsums else term_m
    cell_n = full[ii, jj]
    cell_e = drug_m[jj].astype(float) * event_m[ii].astype(float) / max(n_total, 1)
    return CountTable(drugs=tuple(dr_names.tolist()), events=tuple(ev_names.tolist()) + tuple(group_keys),
                      n_terms=n_terms, cell_drug=jj.astype(np.int32), cell_event=ii.astype(np.int32),
                      cell_n=cell_n.astype(np.int64), cell_e=cell_e, drug_n=drug_m.astype(np.int64),
                      event_n=event_m.astype(np.int64), n_reports=n_total, source=source,
                      approximate_groups=bool(group_keys), notes=tuple(notes), groups=dict(groups),
                      drug_map=drug_map)


# --------------------------------------------------------------------------------------
# contingency (mddc) tables
# --------------------------------------------------------------------------------------


def from_contingency(table: pd.DataFrame, *, groups: dict[str, TermGroup] | None = None,
                     source: str = "contingency table", drug_map: DrugMap | None = None) -> CountTable:
    """A count table from a matrix (rows events, columns drugs) of non-negative integers.

    Column names go through the drug key (:func:`drug_key_function`), row names through
    :func:`clean_term`; columns or rows that meet on one key are summed (and said so)."""
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InputError([(Location(source), "the contingency table is empty")])
    values = table.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        raise InputError([(Location(source), "the contingency table must hold numbers")])
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.floor(values)):
        raise InputError([(Location(source), "counts must be whole numbers ≥ 0")])
    if np.any(values > 2**53):
        raise InputError([(Location(source), "a count above 2^53 cannot be a number of reports")])
    key = drug_key_function(drug_map)
    drugs = [key(str(d)) for d in table.columns]
    events = [clean_term(e) for e in table.index.astype(str)]
    notes = []
    if "" in drugs or "" in events:
        raise InputError([(Location(source), "a drug (column) or event (row) name is empty")])
    for kind, labels, raw in (("drug columns", drugs, list(table.columns)), ("event rows", events, list(table.index))):
        if len(set(labels)) < len(labels):
            seen: dict[str, list[str]] = {}
            for lab, r in zip(labels, raw, strict=True):
                seen.setdefault(lab, []).append(str(r))
            same = "; ".join(f"{', '.join(v)} → {k}" for k, v in seen.items() if len(v) > 1)
            notes.append(f"{kind} that name the same {'drug' if kind[0] == 'd' else 'term'} were summed "
                         f"(cell counts: an upper bound on unique reports): {one_line(same)}")
    groups = groups or {}
    if any(any(e in g.terms for e in events) for g in groups.values()):
        notes.append("term groups on a contingency table are sums of cell counts (a report with two of the "
                     "group's terms counts twice): an upper bound on unique reports")
    return _from_dense(values.astype(np.int64), events, drugs, groups=groups, source=source, drug_map=drug_map,
                       notes=notes)


def read_contingency_csv(path: str | Path, *, groups: dict[str, TermGroup] | None = None,
                         drug_map: DrugMap | None = None) -> CountTable:
    """Read an mddc-format CSV: first column event names, header row drug names (incl. "Other")."""
    p = Path(path)
    df = read_csv_text(p, index_col=0)
    problems = []
    if df.shape[1] == 0:
        raise InputError([(Location(str(p), 1), "no drug columns: the header needs an empty first cell, then "
                           "drug names (e.g. ',Atorvastatin,Other')")])
    for j, col in enumerate(df.columns):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() | (num < 0) | (num != np.floor(num)) | ~np.isfinite(num) | (num > 2**53)
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append((Location(str(p), int(i) + 2, str(col)),
                             f"count must be a whole number ≥ 0, found {df[col].iloc[i]!r}"))
        df[col] = num
    if problems:
        raise InputError(problems)
    return from_contingency(df.astype(np.int64), groups=groups, source=str(p), drug_map=drug_map)


def _first_bad_utf8(p: Path, chunk: int = 1 << 20) -> int | None:
    """The 1-based line of the first byte sequence that is not UTF-8 (None if there is none)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with p.open("rb") as fh:
        while block := fh.read(chunk):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's few buffered bytes (no newline among them) + this block
                pos = max(exc.start - (len(exc.object) - len(block)), 0)
                return line + block[:pos].count(b"\n")
            line += block.count(b"\n")
    return None


def read_csv_text(p: Path, **kw) -> pd.DataFrame:
    """A CSV file as text, or a one-line error naming the file (and the line where pandas knows it)."""
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise InputError([(Location(str(p)), "is a folder, not a CSV file")])
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8", **kw)
    except UnicodeDecodeError as exc:
        raise InputError([(Location(str(p), _first_bad_utf8(p)), f"not UTF-8 text ({exc.reason}); save the file "
                           "as UTF-8")]) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError([(Location(str(p)), "the file is empty: a CSV needs a header row")]) from exc
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise InputError([(Location(str(p), int(m.group(1)) if m else None),
                           f"not a well-formed CSV: {one_line(str(exc).strip().splitlines()[-1])}")]) from exc
    except (ValueError, OSError) as exc:
        raise InputError([(Location(str(p)), f"cannot read the table: {one_line(exc)}")]) from exc

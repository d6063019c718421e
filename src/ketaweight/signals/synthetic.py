"""Synthetic FAERS quarters in the real file format, with a known truth (for tests and benchmarks).

``write_synthetic_quarter(out_dir, SyntheticQuarter(n_reports=400_000))`` writes
``faers_ascii_2023q1.zip`` with ``ascii/DEMO23Q1.txt`` … ``INDI23Q1.txt`` and
``deleted/DELETED_CASES_23Q1.txt``: ``$``-delimited, header row, CRLF line ends, real column
names.  A real quarter has about 400,000 reports, 1.8 M drug rows and 1.3 M reaction rows;
the defaults reproduce those sizes (4.5 drugs and 3.25 reactions per report on average).

What is planted (the truth, returned and written nowhere else):

* drug popularity and event frequency follow Zipf laws; each background event is drawn given
  one drug of its report with a mean-1 gamma multiplier per drug and event (shape
  ``heterogeneity``), and each drug adds a few events from its own short "profile" — so, as in
  real data, relative reporting rates vary continuously and the EBGM prior has an interior
  maximum.  The named drugs (ketamine, esketamine, the controls) get no multiplier and no
  weight terms in their profiles: their pairs with the weight groups are exact nulls unless
  planted;
* planted associations ``signals = {(ingredient, group_or_term): rr}``: reports with the
  drug get extra events from the group so the reporting ratio is about ``rr``;
  defaults plant the positive controls (mirtazapine → weight gain, topiramate → weight
  loss) and leave ketamine, esketamine and amoxicillin null;
* duplicates: a share of cases has a second, later version (same caseid, caseversion + 1);
  a share of cases is on the deleted list; in a :func:`history` of quarters, a share of each
  quarter's reports are follow-ups (new versions) of earlier quarters' cases;
* names: ketamine and the controls appear under brand, salt and misspelt names;
* with ``defects=True`` a handful of lines carry every defect the ingester must survive:
  ``$`` inside a value, a record broken over two lines, two records collapsed on one line,
  Windows-1252 bytes, a line that is not a record, a bad role code.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.mapping import load_term_groups

__all__ = ["SyntheticQuarter", "write_synthetic_quarter", "NAMED_DRUGS"]

NAMED_DRUGS: dict[str, tuple[str, ...]] = {
    "ketamine": ("KETAMINE", "KETAMINE HCL", "KETALAR", "Ketamine hydrochloride", "KETAMINE HYDROCHLORIDE.",
                 "ketamin"),
    "esketamine": ("SPRAVATO", "ESKETAMINE", "SPRAVATO (ESKETAMINE)", "esketamine hydrochloride"),
    "mirtazapine": ("MIRTAZAPINE", "REMERON", "Remeron SolTab"),
    "topiramate": ("TOPIRAMATE", "TOPAMAX", "topiramate 50 mg"),
    "amoxicillin": ("AMOXICILLIN", "AMOXIL", "AMOXICILLIN TRIHYDRATE"),
    "sertraline": ("SERTRALINE", "ZOLOFT", "SERTRALINE HYDROCHLORIDE"),
    "quetiapine": ("QUETIAPINE", "SEROQUEL"),
}
"""Ingredients that appear under several verbatim names (first = the usual one)."""


@dataclass(frozen=True)
class SyntheticQuarter:
    """Settings of one synthetic quarter (sizes, vocabulary, planted truth, defects)."""

    quarter: str = "2023Q1"
    n_reports: int = 400_000
    drugs_per_report: float = 4.5
    events_per_report: float = 3.25
    n_drugs: int = 4_000
    n_events: int = 6_000
    named_drug_share: dict[str, float] = field(default_factory=lambda: {
        "ketamine": 0.004, "esketamine": 0.003, "mirtazapine": 0.01, "topiramate": 0.008, "amoxicillin": 0.012,
        "sertraline": 0.02, "quetiapine": 0.015})
    signals: dict[tuple[str, str], float] = field(default_factory=lambda: {
        ("mirtazapine", "weight-gain"): 4.0, ("topiramate", "weight-loss"): 3.0})
    profile_size: int = 25
    profile_rate: float = 0.04
    heterogeneity: float = 0.5
    version_share: float = 0.06
    deleted_share: float = 0.004
    defects: bool = True
    crlf: bool = True
    folder: str = "ascii"
    seed: int = 20230101
    vocabulary_seed: int | None = None
    """Seed of the vocabulary (event popularity, per-drug rate multipliers, drug profiles); quarters of one
    history share it so that a drug's reporting pattern is stable over time.  None: drawn from ``seed``."""
    case_ids: tuple[int, int] | None = None
    """Range ``[lo, hi)`` of case ids for this quarter's new cases, taken in order (quarters of one history
    use disjoint ranges).  None: drawn at random from 10,000,000–98,999,999."""
    followups_from: tuple[int, int] | None = None
    """Range of case ids of earlier quarters; ``followup_share`` of this quarter's reports are new versions
    (caseversion 4–9) of cases drawn from it, as FAERS follow-ups are."""
    followup_share: float = 0.0


def _zipf_p(n: int, s: float, rng) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _write_csv(table: pa.Table, crlf: bool) -> bytes:
    buf = io.BytesIO()
    buf.write("$".join(table.column_names).encode() + b"\n")
    pacsv.write_csv(table, buf, pacsv.WriteOptions(delimiter="$", quoting_style="none", include_header=False))
    out = buf.getvalue()
    return out.replace(b"\n", b"\r\n") if crlf else out


def write_synthetic_quarter(out_dir: str | Path, spec: SyntheticQuarter | None = None) -> tuple[Path, dict]:
    """Write one synthetic quarter zip into ``out_dir``; return (path, truth)."""
    spec = spec or SyntheticQuarter()
    rng = np.random.default_rng(spec.seed)
    vocab = rng if spec.vocabulary_seed is None else np.random.default_rng(spec.vocabulary_seed)
    year, q = int(spec.quarter[:4]), int(spec.quarter[-1])
    yy = f"{year % 100:02d}"
    groups = load_term_groups()

    # ---- vocabulary
    generic_drugs = np.array([f"DRUGNAME{i:05d}" for i in range(spec.n_drugs)], dtype=object)
    group_terms = sorted({t for g in groups.values() for t in g.terms})
    events = np.array([t.capitalize() for t in group_terms] +
                      [f"Event term {i:05d}" for i in range(spec.n_events - len(group_terms))], dtype=object)
    ev_p = _zipf_p(events.size, 1.05, rng)
    # the group terms (listed first) are common terms: ranks drawn from 10..89
    ranks = np.r_[vocab.choice(np.arange(10, 90), size=len(group_terms), replace=False),
                  np.setdiff1d(np.arange(events.size), np.arange(10, 90))]
    ranks = np.r_[ranks[: len(group_terms)],
                  vocab.permutation(np.setdiff1d(np.arange(events.size), ranks[: len(group_terms)]))]
    ev_p = ev_p[ranks]
    dr_p = _zipf_p(generic_drugs.size, 1.1, rng)

    n = spec.n_reports
    version, caseid = _case_ids(spec, n, rng)
    ndrug = 1 + rng.poisson(spec.drugs_per_report - 1, size=n)
    nev = 1 + rng.poisson(max(spec.events_per_report - 1 - spec.drugs_per_report * spec.profile_rate, 0.1), size=n)

    # ---- drugs per report
    d_rep = np.repeat(np.arange(n), ndrug)
    total_d = d_rep.size
    drug_idx = rng.choice(generic_drugs.size, size=total_d, p=dr_p)
    drugname = generic_drugs[drug_idx].astype(object)
    ingredient = np.array([f"drugname{i:05d}" for i in range(spec.n_drugs)], dtype=object)[drug_idx]
    named = list(spec.named_drug_share)
    u = rng.random(total_d)
    cum = 0.0
    for ing in named:
        share = spec.named_drug_share[ing]
        sel = (u >= cum) & (u < cum + share)
        cum += share
        k = int(sel.sum())
        variants = np.array(NAMED_DRUGS[ing], dtype=object)
        vp = np.r_[0.6, np.full(len(variants) - 1, 0.4 / max(len(variants) - 1, 1))] if len(variants) > 1 else [1.0]
        drugname[sel] = variants[rng.choice(len(variants), size=k, p=vp)]
        ingredient[sel] = ing
    seq = np.concatenate([np.arange(1, k + 1) for k in ndrug]) if n < 2000 else _seq(ndrug)
    role = np.where(seq == 1, "PS", rng.choice(np.array(["SS", "C", "I"]), size=total_d, p=[0.35, 0.6, 0.05]))

    # ---- events per report: background events, plus each drug's own profile (heterogeneous
    # relative rates, as in real data), plus planted extras.  Profiles never hold group terms,
    # so ketamine, esketamine and amoxicillin stay null for the weight groups.
    e_rep = np.repeat(np.arange(n), nev)
    n_group = len(group_terms)
    drug_code = drug_idx.copy()
    for k, ing in enumerate(named):
        drug_code[ingredient == ing] = spec.n_drugs + k
    # background events: drawn given one drug of the report, with a mean-1 gamma
    # multiplier (shape ``heterogeneity``) per drug and event — real tables have no exact nulls.
    # Named drugs and the group terms get multiplier 1, so the planted nulls stay exactly null.
    ev_idx = np.empty(e_rep.size, dtype=np.int64)
    # each background event is attributed to one of its report's drugs, at random
    rep_start = np.r_[0, np.cumsum(ndrug)[:-1]]
    owner = drug_code[rep_start[e_rep] + (rng.random(e_rep.size) * ndrug[e_rep]).astype(np.int64)]
    order = np.argsort(owner, kind="stable")
    codes, first = np.unique(owner[order], return_index=True)
    bounds = np.r_[first, order.size]
    for k, code in enumerate(codes):
        idx = order[bounds[k]: bounds[k + 1]]
        if code >= spec.n_drugs or spec.heterogeneity <= 0:
            p_d = ev_p
        else:
            mult = vocab.gamma(spec.heterogeneity, 1.0 / spec.heterogeneity, size=events.size)
            mult[:n_group] = 1.0
            p_d = ev_p * mult
            p_d /= p_d.sum()
        ev_idx[idx] = rng.choice(events.size, size=idx.size, p=p_d)
    prof_p = ev_p[n_group:] / ev_p[n_group:].sum()
    profiles = n_group + vocab.choice(events.size - n_group, size=(spec.n_drugs + len(named), spec.profile_size), p=prof_p)
    add = rng.random(total_d) < spec.profile_rate
    pick = rng.zipf(1.6, size=int(add.sum())) - 1
    pick = np.minimum(pick, spec.profile_size - 1)
    e_rep = np.r_[e_rep, d_rep[add]]
    ev_idx = np.r_[ev_idx, profiles[drug_code[add], pick]]
    extra_rep, extra_ev = [], []
    ev_lookup = {t.lower(): i for i, t in enumerate(events)}
    truth_signals = {}
    for (ing, target), rr in spec.signals.items():
        terms = sorted(groups[target].terms) if target in groups else [target.lower()]
        idx = np.array([ev_lookup[t] for t in terms if t in ev_lookup])
        base = 1 - np.prod(1 - ev_p[idx]) ** spec.events_per_report if idx.size else 0.0
        reps = np.unique(d_rep[ingredient == ing])
        p_extra = min(1.0, max(rr - 1.0, 0.0) * base)
        chosen = reps[rng.random(reps.size) < p_extra]
        pe = ev_p[idx] / ev_p[idx].sum()
        extra_rep.append(chosen)
        extra_ev.append(idx[rng.choice(idx.size, size=chosen.size, p=pe)])
        truth_signals[f"{ing}|{target}"] = {"rr_planted": rr, "reports_with_drug": int(reps.size),
                                           "extra_reports": int(chosen.size)}
    e_rep = np.concatenate([e_rep] + extra_rep)
    ev_idx = np.concatenate([ev_idx] + extra_ev)
    order = np.argsort(e_rep, kind="stable")
    e_rep, ev_idx = e_rep[order], ev_idx[order]

    # ---- versions: some cases get an older version too (same content)
    has_old = rng.random(n) < spec.version_share
    has_old &= version > 1
    old = np.flatnonzero(has_old)
    deleted = rng.choice(n, size=int(spec.deleted_share * n), replace=False)

    def pid(rep, ver):
        return (caseid[rep].astype(np.int64) * 10 + ver).astype(str)

    rep_all = np.r_[np.arange(n), old]
    ver_all = np.r_[version, version[old] - 1]
    fda_base = np.datetime64(f"{year}-{3 * q - 2:02d}-01")
    fda_dt = (fda_base + rng.integers(0, 89, size=rep_all.size).astype("timedelta64[D]")).astype(str)
    fda_dt = np.char.replace(fda_dt.astype("U10"), "-", "")
    fda_dt[n:] = np.char.replace((fda_base - np.timedelta64(120, "D")).astype(str), "-", "")  # old versions earlier
    sex = rng.choice(np.array(["F", "M", ""]), size=n, p=[0.58, 0.38, 0.04])[rep_all]
    age = rng.integers(18, 90, size=n)[rep_all].astype(str)
    demo = {c: np.full(rep_all.size, "", dtype=object) for c in TABLES["DEMO"].columns}
    demo.update(primaryid=pid(rep_all, ver_all), caseid=caseid[rep_all].astype(str), caseversion=ver_all.astype(str),
                i_f_code=np.where(ver_all > 1, "F", "I"), fda_dt=fda_dt, init_fda_dt=fda_dt, rept_cod="EXP",
                mfr_sndr="SYNTHETIC", age=age, age_cod="YR", sex=sex, e_sub="Y", occp_cod="MD",
                reporter_country="US", occr_country="US")

    def expand(rep_idx, cols):
        """Rows for current versions, plus copies for the old versions of the same cases."""
        mask_old = has_old[rep_idx]
        rows = {k: np.broadcast_to(np.asarray(v, dtype=object), rep_idx.shape) for k, v in cols.items()}
        p_cur = pid(rep_idx, version[rep_idx])
        p_old = pid(rep_idx[mask_old], version[rep_idx[mask_old]] - 1)
        out = {"primaryid": np.r_[p_cur, p_old], "caseid": np.r_[caseid[rep_idx], caseid[rep_idx[mask_old]]].astype(str)}
        for k, v in rows.items():
            out[k] = np.r_[v, v[mask_old]]
        return out

    drug = expand(d_rep, {"drug_seq": seq.astype(str), "role_cod": role, "drugname": drugname,
                          "prod_ai": np.where(rng.random(total_d) < 0.8, ingredient, ""),
                          "val_vbm": "1", "route": "Oral", "dose_vbm": "UNK", "dechal": "U", "rechal": "U"})
    reac = expand(e_rep, {"pt": events[ev_idx]})
    n_out = int(0.75 * n)
    out_rep = np.sort(rng.choice(n, size=n_out, replace=False))
    outc = expand(out_rep, {"outc_cod": rng.choice(np.array(["OT", "HO", "DE", "LT", "DS"]), size=n_out)})
    rp_rep = np.sort(rng.choice(n, size=int(0.03 * n), replace=False))
    rpsr = expand(rp_rep, {"rpsr_cod": rng.choice(np.array(["HP", "CSM", "FGN"]), size=rp_rep.size)})
    th = rng.random(total_d) < 0.35
    ther = expand(d_rep[th], {"dsg_drug_seq": seq[th].astype(str), "start_dt": f"{year}0101", "end_dt": "",
                              "dur": "", "dur_cod": ""})
    ind = rng.random(total_d) < 0.5
    indi = expand(d_rep[ind], {"indi_drug_seq": seq[ind].astype(str),
                               "indi_pt": rng.choice(np.array(["Depression", "Pain", "Anaesthesia",
                                                               "Product used for unknown indication"]),
                                                     size=int(ind.sum()))})

    def to_table(name, cols):
        spec_t = TABLES[name]
        m = len(next(iter(cols.values())))
        arrays = {}
        for c in spec_t.columns:
            v = cols.get(c, "")
            arrays[c] = pa.array(np.broadcast_to(np.asarray(v, dtype=object), (m,)).astype(str), pa.string())
        return pa.table(arrays)

    files = {"DEMO": _write_csv(to_table("DEMO", demo), spec.crlf),
             "DRUG": _write_csv(to_table("DRUG", drug), spec.crlf),
             "REAC": _write_csv(to_table("REAC", reac), spec.crlf),
             "OUTC": _write_csv(to_table("OUTC", outc), spec.crlf),
             "RPSR": _write_csv(to_table("RPSR", rpsr), spec.crlf),
             "THER": _write_csv(to_table("THER", ther), spec.crlf),
             "INDI": _write_csv(to_table("INDI", indi), spec.crlf)}
    defects = {}
    if spec.defects:
        nl = b"\r\n" if spec.crlf else b"\n"
        p0, c0 = demo["primaryid"][0], demo["caseid"][0]
        p1, c1 = demo["primaryid"][1], demo["caseid"][1]
        extra_drug = [
            # '$' inside the verbatim drug name (repairable: only drugname fits)
            f"{p0}${c0}$90$C$KETAMINE $ HCL$KETAMINE$1$Intravenous$UNK$$$U$U$$$$$$$",
            # Windows-1252 byte in a value (repaired by re-decoding)
            None,
            # bad role code (quarantined)
            f"{p0}${c0}$92$XX$SERTRALINE$SERTRALINE$1$Oral$UNK$$$U$U$$$$$$$",
            # not a record at all (quarantined)
            "THIS LINE IS NOT A FAERS RECORD",
        ]
        drug_bytes = [s.encode("utf-8") if s is not None else
                      f"{p0}${c0}$91$C$".encode() + "ACIDE ACÉTYLSALICYLIQUE".encode("cp1252") +
                      b"$ASPIRIN$1$Oral$UNK$$$U$U$$$$$$$" for s in extra_drug]
        files["DRUG"] += nl.join(drug_bytes) + nl
        extra_reac = [
            f"{p0}${c0}$Nausea and".encode() + nl + b"vomiting$",  # broken over two lines
            f"{p0}${c0}$Headache${p1}${c1}$Dizziness$".encode(),  # two records collapsed on one line
        ]
        files["REAC"] += nl.join(extra_reac) + nl
        defects = {"DRUG": {"dollar_repairs": 1, "encoding_repairs": 1, "quarantined": 2},
                   "REAC": {"lines_joined": 1, "records_split": 1}}
    deleted_txt = "\r\n".join(str(int(caseid[i])) for i in deleted).encode() + b"\r\n"

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"faers_ascii_{year}q{q}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for t, b in files.items():
            zf.writestr(f"{spec.folder}/{t}{yy}Q{q}.txt", b)
        zf.writestr(f"deleted/DELETED_CASES_{yy}Q{q}.txt", deleted_txt)
        zf.writestr(f"{spec.folder}/README.txt", b"Synthetic FAERS quarter written by ketaweight (not real data).\r\n")
    truth = {
        "quarter": spec.quarter,
        "reports": n,
        "demo_rows": int(rep_all.size),
        "drug_rows": int(len(drug["primaryid"])),
        "reac_rows": int(len(reac["primaryid"])),
        "old_versions": int(old.size),
        "deleted_cases": int(deleted.size),
        "expected_reports_after_dedup": int(n - np.isin(np.arange(n), deleted).sum()),
        "signals": truth_signals,
        "defects": defects,
        "seed": spec.seed,
        "case_ids": np.unique(caseid),
        "deleted_case_ids": np.unique(caseid[deleted]),
    }
    return path, truth


def _case_ids(spec: SyntheticQuarter, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(caseversion, caseid) of the quarter's ``n`` current reports: new cases (versions 1–3) and, with
    ``followups_from``, follow-ups of earlier cases (versions 4–9)."""
    if spec.case_ids is None:
        caseid = 10_000_000 + rng.choice(89_000_000, size=n, replace=False)
        return rng.integers(1, 4, size=n), caseid
    n_follow = int(round(spec.followup_share * n)) if spec.followups_from is not None else 0
    lo, hi = spec.case_ids
    if hi - lo < n - n_follow:
        raise ValueError(f"case_ids {spec.case_ids} holds fewer than the {n - n_follow:,} new cases needed")
    version = rng.integers(1, 4, size=n)
    caseid = np.arange(lo, lo + n, dtype=np.int64)  # the last n_follow are replaced by follow-ups
    if n_follow:
        flo, fhi = spec.followups_from
        if fhi - flo < n_follow:
            raise ValueError(f"followups_from {spec.followups_from} holds fewer than {n_follow:,} cases")
        caseid[n - n_follow:] = flo + rng.choice(fhi - flo, size=n_follow, replace=False)
        version[n - n_follow:] = rng.integers(4, 10, size=n_follow)
    return version, caseid


def history(n_quarters: int, *, first: str = "2012Q4", n_reports: int = 400_000, followup_share: float = 0.1,
            seed: int = 2012, **settings) -> list[SyntheticQuarter]:
    """Settings of ``n_quarters`` consecutive synthetic quarters that form one FAERS history: one shared
    vocabulary, disjoint ranges of new case ids, and ``followup_share`` of each quarter's reports new
    versions of earlier quarters' cases (so deduplication has to work across quarters).  ``settings``
    go to every :class:`SyntheticQuarter` (``defects``, ``crlf`` …)."""
    year, q = int(first[:4]), int(first[-1])
    base, used = 10_000_000, 0  # new cases take consecutive ids, so every follow-up is of a real earlier case
    out = []
    for k in range(n_quarters):
        share = followup_share if k else 0.0
        n_new = n_reports - int(round(share * n_reports))
        out.append(SyntheticQuarter(quarter=f"{year}Q{q}", n_reports=n_reports, seed=seed + k, vocabulary_seed=seed,
                                    case_ids=(base + used, base + used + n_new),
                                    followups_from=(base, base + used) if k else None, followup_share=share,
                                    **settings))
        used += n_new
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)
    return out


def _seq(counts: np.ndarray) -> np.ndarray:
    """1..k for each k in counts, concatenated (vectorised)."""
    total = int(counts.sum())
    ends = np.cumsum(counts)
    starts = ends - counts
    return np.arange(total) - np.repeat(starts, counts) + 1


def synthetic_pair_table(
    *,
    n_drugs: int = 2_000,
    n_events: int = 4_000,
    n_reports: float = 2.2e6,
    prior: tuple[float, float, float, float, float] = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557),
    seed: int = 1,
):
    """A drug × event count table drawn from DuMouchel's model with a known prior.

    Margins follow Zipf laws; each cell has ``λ ~ P·Γ(α1, β1) + (1−P)·Γ(α2, β2)`` (default: the
    openEBGM CAERS prior) and ``n ~ Poisson(λ·μ)`` with ``μ = N·p_drug·p_event``.  Returns a long
    DataFrame (drug, event, count) of the non-zero cells; about 1,000,000 with the defaults.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    pd_ = _zipf_p(n_drugs, 0.9, rng)
    pe_ = _zipf_p(n_events, 0.8, rng)
    a1, b1, a2, b2, p = prior
    out_d, out_e, out_n = [], [], []
    for i in range(n_drugs):
        mu = n_reports * pd_[i] * pe_
        comp = rng.random(n_events) < p
        lam = np.where(comp, rng.gamma(a1, 1 / b1, n_events), rng.gamma(a2, 1 / b2, n_events))
        cnt = rng.poisson(lam * mu)
        nz = np.flatnonzero(cnt)
        out_d.append(np.full(nz.size, i, dtype=np.int32))
        out_e.append(nz.astype(np.int32))
        out_n.append(cnt[nz])
    d = np.concatenate(out_d)
    e = np.concatenate(out_e)
    return pd.DataFrame({"drug": pd.Categorical.from_codes(d, [f"drug{i:05d}" for i in range(n_drugs)]),
                         "event": pd.Categorical.from_codes(e, [f"event{j:05d}" for j in range(n_events)]),
                         "count": np.concatenate(out_n)})

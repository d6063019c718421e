"""The FAERS quarterly ASCII format: file names, columns, and the checks each row must pass.

FDA publishes one zip per quarter (``faers_ascii_2023q1.zip``) holding ``$``-delimited text
files with a header row, one per table, named ``<TABLE><YY>Q<N>.txt`` (``DEMO23Q1.txt``;
sometimes ``_new``; folder ``ascii/`` or ``ASCII/``), plus from 2019Q1 a list of deleted
case ids (a ``deleted/`` folder).  Column names follow the FDA's "ASC_NTS" description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TABLES", "TableSpec", "MEMBER_RE", "ZIP_RE"]


@dataclass(frozen=True)
class TableSpec:
    """One FAERS table: its canonical columns, which are required, typed, and checked."""

    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    integer: tuple[str, ...]
    """columns stored as BIGINT: every value must be a whole number (ASCII digits) within the signed
    64-bit range, else the row is quarantined."""
    checks: dict[str, tuple[str, str]]
    """column → (regex the whole value must match, ASCII classes; reason if not); failing rows are
    quarantined."""
    shape: dict[str, str]
    """column → regex used only to decide where a stray '$' belongs (never quarantines)."""
    free_text: tuple[str, ...]
    """columns where a literal '$' may appear inside a value."""


TABLES: dict[str, TableSpec] = {
    "DEMO": TableSpec(
        "DEMO",
        ("primaryid", "caseid", "caseversion", "i_f_code", "event_dt", "mfr_dt", "init_fda_dt", "fda_dt",
         "rept_cod", "auth_num", "mfr_num", "mfr_sndr", "lit_ref", "age", "age_cod", "age_grp", "sex",
         "e_sub", "wt", "wt_cod", "rept_dt", "to_mfr", "occp_cod", "reporter_country", "occr_country"),
        required=("primaryid", "caseid", "caseversion", "fda_dt"),
        integer=("primaryid", "caseid", "caseversion", "fda_dt"),
        checks={"fda_dt": (r"\d{8}", "not a date YYYYMMDD")},
        shape={"age": r"[\d.]*", "wt": r"[\d.]*", "sex": r"[A-Z]{0,3}", "age_cod": r"[A-Z]{0,3}",
               "i_f_code": r"[IF]?", "event_dt": r"\d{0,8}", "mfr_dt": r"\d{0,8}", "rept_dt": r"\d{0,8}",
               "init_fda_dt": r"\d{0,8}", "e_sub": r"[YN]?", "to_mfr": r"[YN]?", "rept_cod": r"[A-Z0-9]{0,5}"},
        free_text=("mfr_num", "auth_num", "lit_ref", "mfr_sndr"),
    ),
    "DRUG": TableSpec(
        "DRUG",
        ("primaryid", "caseid", "drug_seq", "role_cod", "drugname", "prod_ai", "val_vbm", "route", "dose_vbm",
         "cum_dose_chr", "cum_dose_unit", "dechal", "rechal", "lot_num", "exp_dt", "nda_num", "dose_amt",
         "dose_unit", "dose_form", "dose_freq"),
        required=("primaryid", "drug_seq", "role_cod", "drugname"),
        integer=("primaryid", "caseid", "drug_seq"),
        checks={"role_cod": (r"PS|SS|C|I", "role must be PS, SS, C or I")},
        shape={"val_vbm": r"\d?", "dechal": r"[A-Z]?", "rechal": r"[A-Z]?", "exp_dt": r"\d{0,8}",
               "nda_num": r"[\w\-]*", "cum_dose_chr": r"[\d.,]*", "dose_amt": r"[\d.,]*"},
        free_text=("drugname", "prod_ai", "dose_vbm", "lot_num", "route", "dose_unit", "dose_form", "dose_freq",
                   "cum_dose_unit"),
    ),
    "REAC": TableSpec(
        "REAC", ("primaryid", "caseid", "pt", "drug_rec_act"),
        required=("primaryid", "pt"), integer=("primaryid", "caseid"),
        checks={"pt": (r".*[^ \t\r\n\f\v].*", "empty preferred term")},
        shape={}, free_text=("pt", "drug_rec_act"),
    ),
    "OUTC": TableSpec(
        "OUTC", ("primaryid", "caseid", "outc_cod"),
        required=("primaryid", "outc_cod"), integer=("primaryid", "caseid"),
        checks={"outc_cod": (r"[A-Z]{2}", "outcome code must be two letters")},
        shape={}, free_text=(),
    ),
    "RPSR": TableSpec(
        "RPSR", ("primaryid", "caseid", "rpsr_cod"),
        required=("primaryid", "rpsr_cod"), integer=("primaryid", "caseid"),
        checks={}, shape={"rpsr_cod": r"[A-Z]{0,4}"}, free_text=(),
    ),
    "THER": TableSpec(
        "THER", ("primaryid", "caseid", "dsg_drug_seq", "start_dt", "end_dt", "dur", "dur_cod"),
        required=("primaryid", "dsg_drug_seq"), integer=("primaryid", "caseid", "dsg_drug_seq"),
        checks={},
        shape={"start_dt": r"\d{0,8}", "end_dt": r"\d{0,8}", "dur": r"[\d.]*", "dur_cod": r"[A-Z]{0,3}"},
        free_text=(),
    ),
    "INDI": TableSpec(
        "INDI", ("primaryid", "caseid", "indi_drug_seq", "indi_pt"),
        required=("primaryid", "indi_drug_seq", "indi_pt"), integer=("primaryid", "caseid", "indi_drug_seq"),
        checks={}, shape={}, free_text=("indi_pt",),
    ),
}

REQUIRED_TABLES = ("DEMO", "DRUG", "REAC")

MEMBER_RE = re.compile(r"^(?P<table>DEMO|DRUG|REAC|OUTC|RPSR|THER|INDI)(?P<yy>\d{2})Q(?P<q>[1-4])(?P<new>_new)?\.txt$",
                       re.IGNORECASE | re.ASCII)
ZIP_RE = re.compile(r"(?P<yyyy>\d{4})[ _-]?q(?P<q>[1-4])", re.IGNORECASE | re.ASCII)

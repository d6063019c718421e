"""The canonical tables: columns, SQL types, units, allowed values and keys.

One store holds five long-format tables (DESIGN.md §3).  Units are part of the schema:
``height_cm`` is centimetres, ``dose_mg`` milligrams, ``duration_min`` minutes; the
``measurements`` table carries a ``unit`` per row, checked against :data:`MEASUREMENT_KINDS`
and converted to the kind's canonical unit on load (lb → kg is the one conversion most
files need; it is reported, never silent).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column: SQL type, whether it may be empty, allowed values or range (canonical units)."""

    name: str
    sql_type: str  # DuckDB type
    required: bool = True
    unit: str | None = None
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False  # True where the minimum itself is impossible (a dose of 0 mg)
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    references_patients: bool = True

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class MeasurementKind:
    """A measurement kind, its canonical unit, accepted units (factor to canonical), plausible range,
    and ``period_days``: how many days before the record's date it summarises (0 = a measurement
    at that time, e.g. a weight; 7 = a weekly summary from a wearable or an app)."""

    name: str
    unit: str
    conversions: dict[str, float] = field(default_factory=dict)
    minimum: float = float("-inf")
    maximum: float = float("inf")
    description: str = ""
    period_days: int = 0

    @property
    def accepted_units(self) -> dict[str, float]:
        return {self.unit: 1.0, **self.conversions}


CONTROL_KINDS: tuple[str, ...] = tuple(f"control_{j:02d}" for j in range(1, 100))
"""Generic measurement kinds for negative-control outcomes (network studies, empirical calibration):
measurements the drug cannot change that share its confounding.  The simulator writes them; a real
store maps such lab values or vitals onto them.  Arbitrary units ("au"), any finite value."""

MEASUREMENT_KINDS: dict[str, MeasurementKind] = {
    k.name: k
    for k in (
        MeasurementKind("weight", "kg", {"lb": 0.45359237, "g": 0.001}, 20.0, 400.0, "body weight"),
        MeasurementKind("phq9", "score", {}, 0, 27, "PHQ-9 depression score"),
        MeasurementKind("madrs", "score", {}, 0, 60, "MADRS depression score"),
        MeasurementKind("energy_intake", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000, "reported energy intake"),
        MeasurementKind("activity", "min/d", {"h/d": 60.0}, 0, 1440, "physical activity (light or more)"),
        MeasurementKind("appetite", "score", {}, 0, 10, "appetite, 0 (none) to 10 (very strong)"),
        MeasurementKind("energy_intake_7d", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000,
                        "mean logged energy intake over the 7 days before the record's date (food-logging app)", period_days=7),
        MeasurementKind("activity_7d", "min/d", {"h/d": 60.0}, 0, 1440,
                        "mean daily active minutes over the 7 days before the record's date (wearable)", period_days=7),
        MeasurementKind("energy_expenditure_7d", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000,
                        "mean estimated total energy expenditure over the 7 days before the record's date (wearable)", period_days=7),
        MeasurementKind("energy_intake_7d_ref", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000,
                        "mean energy intake over the 7 days before the record's date by a reference method (research-grade "
                        "validation substudy: weighed intake or a recovery biomarker)", period_days=7),
        MeasurementKind("energy_expenditure_7d_ref", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000,
                        "mean total energy expenditure over the 7 days before the record's date by a reference method "
                        "(research-grade validation substudy, e.g. doubly labelled water)", period_days=7),
        MeasurementKind("energy_expenditure_net_7d_ref", "kcal/d", {"kJ/d": 1 / 4.184}, 0, 10000,
                        "mean non-activity energy expenditure over the 7 days before the record's date by a reference method "
                        "(research-grade validation substudy: doubly labelled water minus accelerometer activity energy)",
                        period_days=7),
        MeasurementKind("activity_7d_ref", "min/d", {"h/d": 60.0}, 0, 1440,
                        "mean daily active minutes over the 7 days before the record's date by a research-grade "
                        "accelerometer (validation substudy)", period_days=7),
        MeasurementKind("resting_hr", "bpm", {}, 25, 220, "resting heart rate (negative-control outcome)"),
        MeasurementKind("systolic_bp", "mmHg", {}, 60, 260, "systolic blood pressure"),
        MeasurementKind("diastolic_bp", "mmHg", {}, 30, 160, "diastolic blood pressure"),
        *(MeasurementKind(name, "au", {}, -1e9, 1e9, "negative-control measurement (arbitrary units)") for name in CONTROL_KINDS),
    )
}

DRUGS = ("ketamine", "esketamine")
ROUTES = ("iv", "im", "intranasal", "oral", "subcutaneous")
LIFESTYLE_KINDS = ("diet_programme", "exercise_programme", "other")
SEVERITIES = ("mild", "moderate", "severe")

PATIENTS = Table(
    "patients",
    (
        Column("patient_id", "VARCHAR", description="pseudonymous identifier; never shown in outputs"),
        Column("sex", "VARCHAR", allowed=("F", "M")),
        Column("birth_year", "INTEGER", minimum=1900, maximum=2030),
        Column("height_cm", "DOUBLE", unit="cm", minimum=100, maximum=250),
        Column("atypical_features", "BOOLEAN", required=False,
               description="depression with atypical (hyperphagic) features"),
    ),
    key=("patient_id",),
    description="one row per patient",
    references_patients=False,
)

EXPOSURES = Table(
    "exposures",
    (
        Column("patient_id", "VARCHAR"),
        Column("time", "TIMESTAMP", description="start of the session"),
        Column("drug", "VARCHAR", allowed=DRUGS, description="ingredient"),
        Column("dose_mg", "DOUBLE", unit="mg", minimum=0.0, minimum_exclusive=True, maximum=2000.0),
        Column("route", "VARCHAR", allowed=ROUTES),
        Column("duration_min", "DOUBLE", required=False, unit="min", minimum=0.0, maximum=1440.0),
    ),
    key=("patient_id", "time", "drug"),
    description="one row per ketamine or esketamine administration; mg/kg is derived from the nearest weight",
)

MEASUREMENTS = Table(
    "measurements",
    (
        Column("patient_id", "VARCHAR"),
        Column("time", "TIMESTAMP"),
        Column("kind", "VARCHAR", allowed=tuple(MEASUREMENT_KINDS)),
        Column("value", "DOUBLE", description="in the canonical unit of the kind after load"),
        Column("unit", "VARCHAR"),
    ),
    key=("patient_id", "time", "kind"),
    description="long format: weight, depression scales, intake, activity, appetite, vitals",
)

LIFESTYLE = Table(
    "lifestyle",
    (
        Column("patient_id", "VARCHAR"),
        Column("start", "DATE"),
        Column("end", "DATE", required=False),
        Column("kind", "VARCHAR", allowed=LIFESTYLE_KINDS),
        Column("detail", "VARCHAR", required=False),
    ),
    key=("patient_id", "start", "kind"),
    description="diet and exercise programmes and other lifestyle changes",
)

ADVERSE_EVENTS = Table(
    "adverse_events",
    (
        Column("patient_id", "VARCHAR"),
        Column("time", "TIMESTAMP"),
        Column("term", "VARCHAR", description="MedDRA preferred term"),
        Column("severity", "VARCHAR", allowed=SEVERITIES),
    ),
    key=("patient_id", "time", "term"),
    description="adverse events, one row per event",
)

TABLES: dict[str, Table] = {t.name: t for t in (PATIENTS, EXPOSURES, MEASUREMENTS, LIFESTYLE, ADVERSE_EVENTS)}
"""Load order matters: patients first, so the others can reference them."""


def create_table_sql(table: Table) -> str:
    """CREATE TABLE statement with explicit types.

    Keys are enforced by validation before every load (with file and line of each
    duplicate), not by a PRIMARY KEY index: DuckDB's ART index would make loading tens of
    millions of simulated measurements several times slower and gives no line numbers.
    """
    cols = ",\n  ".join(
        f'"{c.name}" {c.sql_type}{" NOT NULL" if c.required else ""}' for c in table.columns
    )
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" (\n  {cols}\n)'

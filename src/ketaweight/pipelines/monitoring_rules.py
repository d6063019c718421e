"""The monitoring rules file (TOML): read, validate, and say exactly where it is wrong.

The shipped file (``pipelines/data/monitoring.toml``) documents every rule and threshold in its
comments; clinicians copy and edit it.  :func:`load_rules` refuses unknown keys, wrong types and
impossible values, each problem as ``FILE, line N, column 'section.key': reason`` (an
:class:`~ketaweight.core.errors.InputError`), and reports all problems at once.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ketaweight.core.errors import InputError
from ketaweight.core.tomlfile import read_toml, validation_problems

SHIPPED_RULES = "monitoring.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Courses(_Section):
    new_course_after_days: int = Field(90, gt=0, description="days without a session that end a course")


class LossWindow(_Section):
    days: int = Field(gt=0, le=3650, description="look-back window, days")
    percent: float = Field(gt=0, lt=100, description="loss from the window's highest weight, percent")


class RapidWeightLoss(_Section):
    enabled: bool = True
    windows: tuple[LossWindow, ...] = (LossWindow(days=30, percent=5.0), LossWindow(days=180, percent=10.0))

    @field_validator("windows")
    @classmethod
    def _distinct(cls, v: tuple[LossWindow, ...]) -> tuple[LossWindow, ...]:
        if len({w.days for w in v}) != len(v):
            raise ValueError("two windows have the same number of days")
        return v


class LowBMI(_Section):
    enabled: bool = True
    below_kg_per_m2: float = Field(18.5, gt=10, lt=40)


class DoseAboveProtocol(_Section):
    enabled: bool = True
    ketamine_max_mg_per_kg: dict[Literal["iv", "im", "intranasal", "oral", "subcutaneous"], float] = Field(
        default_factory=lambda: {"iv": 1.0, "im": 1.0, "subcutaneous": 1.0, "intranasal": 1.0, "oral": 3.0})
    tolerance_pct: float = Field(5.0, ge=0, le=100)
    weight_within_days: int = Field(90, gt=0)
    esketamine_max_mg: float = Field(84.0, gt=0)

    @field_validator("ketamine_max_mg_per_kg")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [r for r in ("iv", "im", "intranasal", "oral", "subcutaneous") if r not in v]
        if missing:  # a route without a ceiling would go unchecked
            raise ValueError(f"every route needs a ceiling; add {', '.join(missing)}")
        bad = [r for r, x in v.items() if not 0 < x <= 20]
        if bad:
            raise ValueError(f"mg/kg ceilings must lie in (0, 20]; check {', '.join(bad)}")
        return v


class SessionFrequency(_Section):
    enabled: bool = True
    induction_days: int = Field(28, ge=0)
    induction_max_per_7_days: int = Field(3, gt=0, le=14)
    maintenance_max_per_7_days: int = Field(2, gt=0, le=14)


class DoseEscalation(_Section):
    enabled: bool = True
    step_pct: float = Field(5.0, ge=0, lt=100)
    min_increases: int = Field(3, ge=1)
    min_total_increase_pct: float = Field(50.0, gt=0)


class BloodPressureAfterDose(_Section):
    enabled: bool = True
    systolic_above_mmhg: float = Field(180, gt=60, lt=300)
    diastolic_above_mmhg: float = Field(110, gt=30, lt=200)
    within_hours: float = Field(4, gt=0, le=72)


class AdverseEventFollowUp(_Section):
    enabled: bool = True
    severities: tuple[Literal["mild", "moderate", "severe"], ...] = ("moderate", "severe")
    within_days: int = Field(7, gt=0)


class FollowUpWeighing(_Section):
    enabled: bool = True
    max_gap_days: int = Field(35, gt=0)
    monitor_days_after_last_session: int = Field(84, ge=0)


class MonitoringRules(_Section):
    """Every rule's settings; the defaults equal the shipped file."""

    courses: Courses = Courses()
    rapid_weight_loss: RapidWeightLoss = RapidWeightLoss()
    low_bmi: LowBMI = LowBMI()
    dose_above_protocol: DoseAboveProtocol = DoseAboveProtocol()
    session_frequency: SessionFrequency = SessionFrequency()
    dose_escalation: DoseEscalation = DoseEscalation()
    blood_pressure_after_dose: BloodPressureAfterDose = BloodPressureAfterDose()
    adverse_event_follow_up: AdverseEventFollowUp = AdverseEventFollowUp()
    follow_up_weighing: FollowUpWeighing = FollowUpWeighing()
    source: str = Field("defaults", exclude=True, description="the file these rules came from")


def shipped_rules_path() -> Path:
    """The rules file that ships with ketaweight (a template to copy)."""
    return Path(str(resources.files("ketaweight.pipelines") / "data" / SHIPPED_RULES))


def load_rules(path: str | Path | None = None) -> MonitoringRules:
    """Read and validate a rules file (default: the shipped one); raise InputError naming file, line and key
    (``rules.toml, line 3: key 'low_bmi.below_kg_per_m2': Input should be a valid number``)."""
    p = Path(path) if path is not None else shipped_rules_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such rules file (copy {shipped_rules_path()} and edit it)")
    data, text = read_toml(p)
    try:
        return MonitoringRules.model_validate({**data, "source": str(p)})
    except ValidationError as exc:
        raise InputError(validation_problems(exc, str(p), text, unknown_key="unknown key (see the shipped "
                                             "monitoring.toml for the keys each rule takes)")) from exc

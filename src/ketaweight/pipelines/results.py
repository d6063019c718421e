"""The results documents the pipelines write: one result type per results-file ``kind``.

Each type is the typed payload of a results file (``core.results.write_result`` writes it,
``read_result`` reads it back); the report and the grade read these types, never raw JSON.  The
module imports no store, so the layers that read results only may import it.

=====================  ==========================================================================
kind                   type
=====================  ==========================================================================
``causal``             :class:`CausalStudy` — a target trial (or a plain table) by several estimators
``mechanisms``         :class:`MechanismsResults` — mediation, dose-response, heterogeneity
``responsible_use``    :class:`ResponsibleUse` — cohort-level adverse events and monitoring flags
``simulation_truth``   :class:`SimulationTruth` — the simulator's average truths
``validation``         :class:`ValidationResults` — estimators against the simulator's truth
``mechanisms_validation``  :class:`MechanismsValidation` — mechanisms against the truth
``network_truth``      :class:`NetworkTruth` — a simulated network's truth, per site and pooled
=====================  ==========================================================================

``signals`` (:class:`ketaweight.signals.report.SignalsReport`) and ``faers_ingest``
(:class:`ketaweight.signals.faers.IngestReport`) live with the signals they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ketaweight.causal.analysis import CausalAnalysis
from ketaweight.core.attrition import AttritionStep
from ketaweight.core.privacy import mask_count
from ketaweight.core.protocol import RESULT_KINDS, Count, InMemory, Real, Result
from ketaweight.core.summary import Summary
from ketaweight.mechanisms.dose_response import DoseResponseResult
from ketaweight.signals.faers import IngestReport  # noqa: F401  (registers kind 'faers_ingest')
from ketaweight.signals.report import SignalsReport  # noqa: F401  (registers kind 'signals')
from ketaweight.mechanisms.heterogeneity import IndividualEffects, ModifierResult, VersionResult
from ketaweight.mechanisms.mediation import MediationResult
from ketaweight.mechanisms.modifiers import ModifierSearch
from ketaweight.study.spec import Study


@dataclass(frozen=True)
class CausalStudy(Result):
    """A ``kind = "causal"`` file: the study (None for a plain table analysed with ``analyze --table``),
    the units of each analysed outcome column, the attrition that led to the analysed rows, the
    covariates in words, and per outcome column the estimators side by side."""

    kind: ClassVar[str] = "causal"

    study: Study | None
    outcome_units: dict[str, str]
    cohort_attrition: tuple[AttritionStep, ...]
    covariates: dict[str, str]
    analyses: dict[str, CausalAnalysis]

    @property
    def outcome_kind(self) -> str | None:
        """The study's outcome measurement kind (``weight``, ``madrs`` …), None for a plain table."""
        return self.study.outcome.kind if self.study is not None else None

    def plot(self) -> Any:
        """The main outcome's estimators as a forest plot (a Figure)."""
        return next(iter(self.analyses.values())).plot()

    def summary(self) -> Summary:
        first = next(iter(self.analyses.values()))
        s = first.summary()
        title = self.study.study.title if self.study is not None else s.title
        return Summary(title, s.header, s.rows, s.notes)


@dataclass(frozen=True)
class Heterogeneity(Result):
    """Effects by prespecified modifier (Holm-adjusted tests), by treatment version, and per patient; with a
    catalogue search, every baseline covariate tested (``search``) and the subgroup effects of the modifiers
    it found (``found``, numeric ones by tertile)."""

    subgroups: tuple[ModifierResult, ...]
    versions: tuple[VersionResult, ...]
    individual: IndividualEffects
    multiplicity: str = "Holm step-down over the prespecified modifiers (p_holm)"
    search: ModifierSearch | None = None
    found: tuple[ModifierResult, ...] = ()


@dataclass(frozen=True)
class MechanismsResults(Result):
    """A ``kind = "mechanisms"`` file: the article's "how", "how much" and "for whom" for one study.

    ``mediation`` is None when it could not be estimated on this table (``not_estimable`` says why,
    per analysis); ``table`` (the analysis table, with identifiers) stays in memory only."""

    kind: ClassVar[str] = "mechanisms"

    study: str
    outcome_units: str
    not_estimable: dict[str, str]
    mediation: MediationResult | None
    dose_response: tuple[DoseResponseResult, ...]
    heterogeneity: Heterogeneity
    table: InMemory = field(default=None, repr=False, compare=False)  # pd.DataFrame
    path: InMemory = field(default=None, repr=False, compare=False)  # pathlib.Path of the file written

    def summary(self) -> Summary:
        rows: list[tuple[str, str, str]] = []
        if self.mediation is not None:
            rows += [(r.estimand, f"{r.estimate:.3f}", f"({r.ci_low:.3f}, {r.ci_high:.3f})") for r in self.mediation.effects]
        for m in self.heterogeneity.subgroups:
            rows += [(r.estimand, f"{r.estimate:.3f}", f"({r.ci_low:.3f}, {r.ci_high:.3f})") for r in m.subgroups]
        notes = tuple(f"{k}: not estimable — {v}" for k, v in self.not_estimable.items())
        return Summary(f"Mechanisms of {self.study} ({self.outcome_units})", ("effect", "estimate", "95% CI"),
                       tuple(rows), notes)


@dataclass(frozen=True)
class RouteCount(Result):
    group: str
    sessions: Count
    patients: Count


@dataclass(frozen=True)
class AdverseEventRate(Result):
    group: str
    term: str
    events: Count
    sessions: Count
    per_100_sessions: Real | None


@dataclass(frozen=True)
class MonitoringFlag(Result):
    flag: str
    unit: str
    count: Count
    of: Count | None
    percent: Real | None


@dataclass(frozen=True)
class ResponsibleUse(Result):
    """A ``kind = "responsible_use"`` file: sessions by drug and route, adverse events on session days,
    and the monitoring flags, per cohort (never per patient); every count masked below 11."""

    kind: ClassVar[str] = "responsible_use"

    rules: dict[str, Real]
    routes: tuple[RouteCount, ...]
    adverse_events: tuple[AdverseEventRate, ...]
    flags: tuple[MonitoringFlag, ...]
    note: str

    def summary(self) -> Summary:
        rows = tuple((f.flag, f.unit, mask_count(f.count), "—" if f.of is None else mask_count(f.of)) for f in self.flags)
        return Summary("Responsible use: monitoring flags", ("flag", "unit", "count", "of"), rows, (self.note,))


@dataclass(frozen=True)
class Averages(Result):
    """A true effect averaged over everyone (ATE), the treated (ATT) and the untreated (ATC)."""

    ate: Real
    att: Real
    atc: Real


@dataclass(frozen=True)
class SimulationTruth(Result):
    """A ``kind = "simulation_truth"`` file: what a perfect analysis of the simulated cohort would find
    (``ketaweight.sources.simulator.truth.compute_truth``; units in each name)."""

    kind: ClassVar[str] = "simulation_truth"

    horizon_days: int
    n_patients: Count
    n_treated: Count
    weight_change_kg: Averages
    weight_change_pct: Averages
    pathways_kg: dict[str, Averages]
    madrs_points: dict[str, Averages]
    negative_control_resting_hr_bpm: Averages
    individual_effect_kg: dict[str, Real]
    crude_difference_true_weight_change_kg: Real
    notes: tuple[str, ...] = ()
    negative_controls: dict[str, Averages] = field(default_factory=dict)  # the simulator's control outcomes: 0

    def summary(self) -> Summary:
        rows = [("weight change, kg", self.weight_change_kg), ("weight change, %", self.weight_change_pct),
                *((f"via {k}, kg", v) for k, v in self.pathways_kg.items()),
                *((f"MADRS change at {k.replace('_', ' ')}, points", v) for k, v in self.madrs_points.items())]
        return Summary(f"Ground truth at {self.horizon_days} days (simulated)", ("quantity", "ATE", "ATT"),
                       tuple((q, f"{v.ate:+.3f}", f"{v.att:+.3f}") for q, v in rows), self.notes)


@dataclass(frozen=True)
class ValidationRow(Result):
    """One estimator on one scenario over replicate cohorts (outcome units; coverage as a share)."""

    scenario: str
    outcome: str
    method: str
    truth: Real
    mean_estimate: Real
    bias: Real
    bias_over_se: Real
    bias_mcse: Real  # Monte-Carlo standard error of the bias: empirical SD / √replicates
    empirical_sd: Real
    mean_se: Real
    coverage: Real
    coverage_mcse: Real
    replicates: int  # replicates with an estimate (failed ones excluded)
    patients: int | None = None  # patients simulated per replicate cohort (grid runs)
    failed: int = 0  # replicates on which the estimator raised (grid runs)


@dataclass(frozen=True)
class ValidationResults(Result):
    """A ``kind = "validation"`` file: every estimator of a study against the simulator's truth."""

    kind: ClassVar[str] = "validation"

    rows: tuple[ValidationRow, ...]

    def summary(self) -> Summary:
        return Summary("Validation against the simulator's truth",
                       ("scenario", "outcome", "method", "truth", "bias", "bias/SE", "coverage"),
                       tuple((r.scenario, r.outcome, r.method, f"{r.truth:+.3f}", f"{r.bias:+.4f}",
                              f"{100 * r.bias_over_se:+.1f}%", f"{100 * r.coverage:.1f}%") for r in self.rows))


@dataclass(frozen=True)
class MechanismRow(Result):
    """One mediation effect on one scenario over replicates (means; coverage with its Monte-Carlo SE)."""

    scenario: str
    quantity: str
    truth: Real
    mean_estimate: Real
    coverage: Real
    coverage_mcse: Real
    replicates: int


@dataclass(frozen=True)
class MechanismsValidation(Result):
    """A ``kind = "mechanisms_validation"`` file: mediation coverage per effect, and per scenario the
    dose-response and per-patient agreement with the truth (means over replicates)."""

    kind: ClassVar[str] = "mechanisms_validation"

    mediation: tuple[MechanismRow, ...]
    dose_and_individual: dict[str, dict[str, Real]]

    def summary(self) -> Summary:
        return Summary("Mechanisms against the simulator's truth", ("scenario", "effect", "truth", "mean estimate", "coverage"),
                       tuple((r.scenario, r.quantity, f"{r.truth:+.3f}", f"{r.mean_estimate:+.3f}",
                              f"{100 * r.coverage:.0f}%") for r in self.mediation))


@dataclass(frozen=True)
class NetworkTruthSite(Result):
    """One simulated site: its size, seed, what sets it apart, and its true effects (None without truth)."""

    site: str
    n_patients: int
    seed: int
    unmeasured_confounder: bool
    differences: dict[str, Any]
    weight_change_kg: Averages | None
    weight_change_pct: Averages | None


@dataclass(frozen=True)
class NetworkAverage(Result):
    """The network's true weight change, kg: over all its patients, and the mean of the sites' effects."""

    ate_patient_weighted: Real
    ate_mean_of_sites: Real


@dataclass(frozen=True)
class NetworkTruth(Result):
    """A ``kind = "network_truth"`` file (``simulate --sites K``): every site's truth and the network's;
    the drug's true effect on every negative control is ``negative_controls_effect`` (0) at every site."""

    kind: ClassVar[str] = "network_truth"

    sites: tuple[NetworkTruthSite, ...]
    negative_controls_effect: Real
    weight_change_kg: NetworkAverage | None

    def summary(self) -> Summary:
        rows = tuple((s.site, f"{s.n_patients:,}", "yes" if s.unmeasured_confounder else "no",
                      "—" if s.weight_change_kg is None else f"{s.weight_change_kg.ate:+.3f}") for s in self.sites)
        return Summary("Simulated network: each site's true ATE (weight change, kg)",
                       ("site", "patients", "unmeasured confounder", "true ATE"), rows)


def kinds() -> dict[str, type[Result]]:
    """Every results-file kind and its type (this module imports every module that defines one)."""
    return dict(RESULT_KINDS)


__all__ = ["Averages", "CausalStudy", "Heterogeneity", "MechanismRow", "MechanismsResults", "MechanismsValidation",
           "NetworkTruth", "ResponsibleUse", "SimulationTruth", "ValidationResults", "ValidationRow", "kinds"]

"""The study population as it passes through the cohort steps (OHDSI CohortMethod style): one row per
patient still in the study, and the counted attrition that brought it there.

Every step takes a :class:`StudyPopulation` and returns a new one: a covariate step adds columns
(:mod:`ketaweight.study.covariates`), an eligibility step keeps some rows and appends exactly one
:class:`~ketaweight.core.attrition.AttritionStep` (:mod:`ketaweight.study.eligibility`).  Each
checks on entry that the columns it needs are there and says which step makes a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location


@dataclass(frozen=True)
class StudyPopulation:
    """``table``: one row per patient in the study so far (ordered by ``patient_id``, which stays in
    memory and is never written out); ``attrition``: the eligibility steps taken, in order."""

    table: pd.DataFrame
    attrition: tuple[AttritionStep, ...] = ()

    @property
    def n(self) -> int:
        """Patients in the population."""
        return len(self.table)

    def with_columns(self, columns: dict[str, object]) -> StudyPopulation:
        """The same patients with ``columns`` added (arrays or Series aligned to the rows)."""
        table = self.table.copy(deep=False)
        for name, values in columns.items():
            table[name] = values.array if isinstance(values, pd.Series) else values  # keeps nullable dtypes
        return StudyPopulation(table, self.attrition)

    def keep(self, mask: pd.Series, step: str, reason: str) -> StudyPopulation:
        """The rows where ``mask`` is true (missing counts as false), with their attrition step."""
        kept = self.table.loc[mask.fillna(False).astype(bool).to_numpy()].reset_index(drop=True)
        return StudyPopulation(kept, (*self.attrition, AttritionStep.between(step, reason, self.n, len(kept))))


def require(population: StudyPopulation, step: str, columns: tuple[str, ...], producers: Mapping[str, str]) -> None:
    """Raise InputError naming every column ``step`` needs that the population lacks, and the step
    that adds it (``producers``: column → step)."""
    missing = [c for c in columns if c not in population.table.columns]
    if missing:
        raise InputError([(Location("study population", column=c),
                           f"step {step!r} needs this column; run {producers.get(c, 'the step that adds it')!r} first")
                          for c in missing])

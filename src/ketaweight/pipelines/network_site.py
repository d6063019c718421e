"""What one site of a network computes from its own store: the study emulated exactly as
``ketaweight analyze`` does it, and the change of every negative-control outcome beside the
cohort's rows.  Opening the store and reading the study happen here (the pipelines layer); the
control estimates, calibration and the aggregate-only bundle are the network layer's
(:mod:`ketaweight.network.site`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ketaweight.core.provenance import Provenance
from ketaweight.pipelines.emulation import StudyResults, run_study
from ketaweight.store.store import Store
from ketaweight.study.controls import control_changes, control_column, resolve_control_kinds
from ketaweight.study.spec import Study, load_study


@dataclass(frozen=True)
class SiteData:
    """The emulated study and the analysis table with one change column per negative control."""

    study: Study
    results: StudyResults
    table: pd.DataFrame
    control_kinds: tuple[str, ...]
    provenance: Provenance

    @property
    def control_columns(self) -> tuple[str, ...]:
        return tuple(control_column(k) for k in self.control_kinds)


def site_data(store: Store | str | Path, study: Study | str | Path,
              on_stage: Callable[[str], None] = lambda text: None) -> SiteData:
    """Run ``study`` on ``store`` (an open store or a path, opened read-only) with its negative controls;
    ``on_stage`` hears when the work starts (after the store opened: a wrong path is said first)."""
    study = study if isinstance(study, Study) else load_study(study)
    if isinstance(store, Store):
        on_stage(f"emulating {study.study.name} and measuring its negative controls")
        return _site_data(store, study)
    with Store(Path(store), read_only=True) as opened:
        on_stage(f"emulating {study.study.name} and measuring its negative controls")
        return _site_data(opened, study)


def _site_data(store: Store, study: Study) -> SiteData:
    results = run_study(store, study)
    kinds = resolve_control_kinds(store, study)
    changes = control_changes(store, study, results.cohort.table, kinds)
    table = pd.concat([results.cohort.table, changes], axis=1)
    return SiteData(study, results, table, kinds, results.provenance)

"""Regression calibration of error-prone mediators on a validation substudy.

Clinic-grade mediators (a food app's logged intake, a wrist wearable's expenditure) measure their
pathway with error: under-reporting, logging noise, device bias, and a single noisy baseline week
that every change is taken from.  Such error attenuates the mediator's association with the outcome,
so the pathway's effect drains into the direct remainder.  When a random subsample of patients was
also measured by a reference method (a validation substudy: weighed intake, doubly labelled water —
the simulator's ``energy_intake_7d_ref`` and ``energy_expenditure_7d_ref``), regression calibration
(Carroll, Ruppert, Stefanski & Crainiceanu 2006, ch. 4; Rosner, Spiegelman & Willett 1990) replaces
each error-prone mediator M* by E[M | M*, L, A, Z, other mediators, W], fitted on the substudy, where
W are extra calibration covariates (e.g. the app's baseline week, from which every change is taken):

* in the substudy the reference value itself is used;
* outside it, the calibrated prediction, for patients whose predictors are all recorded;
* patients with neither stay incomplete (the mediation's completeness weights handle them).

With the mediation's linear models this gives consistent mediator and outcome models under
non-differential error given the predictors (the substudy must be a random subsample, or at least
one whose selection depends only on the predictors).  The calibration model is refitted in every
bootstrap replicate of the mediation, on that replicate's substudy rows, so the CIs carry the
substudy's uncertainty.

With the treatment only a main effect (``interactions = "none"``), one calibration line serves both arms.
When the records err differently by arm (under-reporting that scales with a drug-induced intake change, a
device bias that scales with the drug's thermogenesis), the outcome model's treatment × mediator terms need the
calibration's slopes per arm: ``"records"`` (the shipped default) adds the consumer records — every mediator
and every extra covariate W — times A, ``"all"`` every predictor times A (one calibration per arm, twice the
coefficients fitted on the substudy).  docs/validation.md has the trade-off at a 10 % substudy: pooled,
appetite's pathway is 8–14 % over its truth; per arm, the extra coefficients cost metabolism its coverage;
``"records"`` is between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ketaweight.causal.glm import fit_linear
from ketaweight.core.vocabulary import CalibrationInteractions

MIN_SUBSTUDY_ROWS = 20
"""Substudy rows (with every predictor) needed to calibrate a mediator."""


@dataclass(frozen=True)
class Calibration:
    """The arrays a replicate needs to calibrate.

    ``columns`` the indices (into the mediator matrix) of the calibrated mediators; ``reference``
    (n, len(columns)) their reference values, NaN outside the substudy; ``predictors`` (n, d) the
    calibration design [1, L, A, Z, every mediator, W] and its treatment interactions (``"records"``: the
    mediators and W times A; ``"all"``: also L and Z times A) with 0 where not ``usable``; ``usable`` rows whose
    predictors are all recorded."""

    columns: np.ndarray
    reference: np.ndarray
    predictors: np.ndarray
    usable: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, a: np.ndarray, z: np.ndarray, m: np.ndarray, columns: np.ndarray,
              reference: np.ndarray, extra: np.ndarray, *, interactions: CalibrationInteractions = "records"
              ) -> Calibration:
        """From the mediation's arrays (``m`` the recorded mediators, NaN where missing) and ``extra`` W, with the
        treatment ``interactions`` of the module docstring."""
        raw = np.column_stack([x, a, z, m, extra])
        if interactions == "records":
            raw = np.column_stack([raw, a[:, None] * np.column_stack([m, extra])])
        elif interactions == "all":
            raw = np.column_stack([raw, a[:, None] * np.column_stack([x[:, 1:], z, m, extra])])
        elif interactions != "none":
            raise ValueError(f"calibration interactions {interactions!r} must be 'none', 'records' or 'all'")
        usable = np.all(np.isfinite(raw), axis=1)
        return cls(columns, reference, np.where(usable[:, None], raw, 0.0), usable)

    def available(self) -> np.ndarray:
        """(n, len(columns)) whether each calibrated mediator has a value (reference or prediction)."""
        return np.isfinite(self.reference) | self.usable[:, None]

    def substudy_rows(self) -> np.ndarray:
        """Rows that fit each calibration model: reference recorded and every predictor recorded (n, columns)."""
        return np.isfinite(self.reference) & self.usable[:, None]

    def calibrate(self, m: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The mediator matrix with each calibrated column replaced (module docstring), the calibration
        models weighted by ``weight`` (bootstrap counts); and per column the rows fitted and the R² (None when
        the reference values are constant)."""
        out = m.copy()
        info: dict[str, Any] = {}
        fit_rows = self.substudy_rows()
        for j, col in enumerate(self.columns):
            rows = fit_rows[:, j] & (weight > 0)
            if rows.sum() < MIN_SUBSTUDY_ROWS:
                raise ValueError(f"the validation substudy has {int(rows.sum())} rows with every calibration "
                                 f"predictor (at least {MIN_SUBSTUDY_ROWS} needed)")
            fit = fit_linear(self.predictors[rows], self.reference[rows, j], sample_weight=weight[rows])
            ref = self.reference[:, j]
            out[:, col] = np.where(np.isfinite(ref), ref,
                                   np.where(self.usable, self.predictors @ fit.coef, np.nan))
            resid = fit.residual
            total = self.reference[rows, j] - np.average(self.reference[rows, j], weights=weight[rows])
            spread = np.average(total**2, weights=weight[rows])
            # R² is undefined (None) when the reference values do not vary (e.g. no drug thermogenesis at all)
            info[int(col)] = {"n_fit": int(rows.sum()),
                              "r2": float(1 - np.average(resid**2, weights=weight[rows]) / spread) if spread > 0 else None}
        return out, info

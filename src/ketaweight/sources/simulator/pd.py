"""Antidepressant pharmacodynamics and the depression score.

Benefit B (0..1) jumps at each session, B ← B + (1−B)·Emax_i·AUC/(AUC+EC50), and decays
exponentially between sessions (half-life ~7 days: Murrough 2013 saw median relapse ~18 days
after six infusions).  Non-responders have Emax = 0.  The natural course (regression to the
mean, usual care) improves the score by a share P_i(t) = Pmax_i·(1 − exp(−t/τ)).
MADRS = M0·(1−B)·(1−P) + rating noise; PHQ-9 is mapped from MADRS (≈ 0.45·MADRS, the
ratio of the scales' ranges 27/60, Carmody 2006-style linking) with its own noise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def benefit_after_session(benefit: FloatArray, emax: FloatArray, auc: FloatArray, ec50: float) -> FloatArray:
    """New benefit after a session with exposure ``auc`` (mg·h/L)."""
    return benefit + (1.0 - benefit) * emax * auc / (auc + ec50)


def natural_improvement(p_max: FloatArray, day: int | FloatArray, tau_days: float) -> FloatArray:
    """Share of the baseline score lost by the natural course by ``day`` (0 before index)."""
    d = np.maximum(np.asarray(day, dtype=float), 0.0)
    return p_max * (1.0 - np.exp(-d / tau_days))


def madrs_true(m0: FloatArray, benefit: FloatArray, natural: FloatArray) -> FloatArray:
    """Noise-free MADRS: M0·(1−B)·(1−P)."""
    return m0 * (1.0 - benefit) * (1.0 - natural)


def madrs_to_phq9(madrs: FloatArray, rng: np.random.Generator, noise_sd: float = 1.5) -> FloatArray:
    """PHQ-9 (0..27, integer) linked from MADRS (0..60) with rating noise."""
    return np.clip(np.rint(0.45 * madrs + rng.normal(0.0, noise_sd, size=np.shape(madrs))), 0, 27)

"""Closed-form ketamine exposure per session (no ODE solver per patient).

Exposure is the area under the plasma concentration curve of one session,
AUC (mg·h/L) = F_route · dose (mg) / CL_i (L/h), with allometric clearance
CL_i = CL_70 · (WT/70)^0.75 · exp(η_i), η_i ~ N(0, ω²), ω² = log(1 + CV²)
(Kamp et al. 2020, ketamine population-PK meta-analysis: CL 79 L/h, V 252 L per 70 kg).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def individual_clearance(
    weight_kg: NDArray[np.float64], cl_70kg: float, cv: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Clearance in L/h for each patient: allometric scaling with log-normal variability."""
    omega = np.sqrt(np.log1p(cv**2))
    eta = rng.normal(-0.5 * omega**2, omega, size=weight_kg.shape)  # mean-one multiplier
    return cl_70kg * (weight_kg / 70.0) ** 0.75 * np.exp(eta)


def session_auc(dose_mg: NDArray[np.float64], bioavailability: NDArray[np.float64],
                clearance_l_per_h: NDArray[np.float64]) -> NDArray[np.float64]:
    """AUC of one session in mg·h/L: F · dose / CL."""
    return bioavailability * dose_mg / clearance_l_per_h

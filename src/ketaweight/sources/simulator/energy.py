"""Hall adult energy-balance model, vectorised over patients (daily Euler steps).

Model (Hall et al. 2011, Lancet 378:826; constants as in the open INSP-RH/bw code, with the
glycogen and extracellular-fluid compartments left out, so lean mass L = BW − F):

    ρF·dF/dt = (1−p)(EI−EE),  ρL·dL/dt = p(EI−EE),  p = C/(C+F),  C = 10.4·ρL/ρF
    EE = K + γF·F + γL·L + δ·BW + TEF + AT + ηF·dF/dt + ηL·dL/dt
    TEF = βTEF·ΔEI,   dAT/dt = (βAT·ΔEI − AT)/τAT
    δ = ((1−βTEF)·PAL − 1)·RMR/BW,   K chosen so that EE(0) = EI(0) = PAL·RMR

RMR is Mifflin–St Jeor (the bw code's coefficients).  Units: masses in kg, energy in
kcal/day, time in days.  Solving the EE equation for the common factor r = (EI−EE)/(C+F)
gives the explicit update used below, so no per-patient ODE solver is needed.

Physical activity changes (minutes/day of extra activity) enter as extra expenditure
proportional to body weight (MET-minutes), so the cost of moving falls as weight falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

FloatArray = NDArray[np.float64]

RHO_F = 9440.727  # kcal per kg of fat
RHO_L = 1816.444  # kcal per kg of lean tissue
GAMMA_F = 3.107075  # kcal/kg/day, fat maintenance
GAMMA_L = 21.98853  # kcal/kg/day, lean maintenance
ETA_F = 179.2543  # kcal/kg, cost of fat synthesis
ETA_L = 229.4455  # kcal/kg, cost of lean synthesis
BETA_TEF = 0.10  # thermic effect of feeding, share of ΔEI
BETA_AT = 0.14  # adaptive thermogenesis, share of ΔEI
TAU_AT = 14.0  # days
FORBES_C = 10.4 * RHO_L / RHO_F  # kg
LIGHT_ACTIVITY_MET_ABOVE_REST = 1.5
"""Light activity (walking, household tasks) ≈ 2.5 METs, i.e. 1.5 METs above rest;
1 MET ≈ 1 kcal/kg/h (Ainsworth 2011 Compendium)."""


def mifflin_st_jeor_rmr(weight_kg: FloatArray, height_m: FloatArray, age_y: FloatArray, male: NDArray[np.bool_]) -> FloatArray:
    """Resting metabolic rate in kcal/day (Mifflin 1990; coefficients as in INSP-RH/bw)."""
    base = 9.99 * weight_kg + 625.0 * height_m - 4.92 * age_y
    return base + np.where(male, 5.0, -161.0)


def baseline_fat_kg(weight_kg: FloatArray, height_m: FloatArray, age_y: FloatArray, male: NDArray[np.bool_]) -> FloatArray:
    """Initial fat mass in kg (Jackson 2002 via Hall 2011): BW·(0.14·age + a·ln BMI − b)/100."""
    bmi = weight_kg / height_m**2
    a = np.where(male, 37.31, 39.96)
    b = np.where(male, 103.94, 102.01)
    fat = weight_kg * (0.14 * age_y + a * np.log(bmi) - b) / 100.0
    # Very lean young men give a negative formula value; keep at least 3% essential fat.
    return np.maximum(fat, 0.03 * weight_kg)


@dataclass
class EnergyState:
    """Per-patient state of the Hall model (arrays of shape (n,)).  Mutated by :meth:`step`."""

    fat_kg: FloatArray
    lean_kg: FloatArray
    adaptive_thermogenesis: FloatArray  # kcal/day
    intake0: FloatArray  # baseline energy intake = PAL·RMR, kcal/day
    k_const: FloatArray  # kcal/day
    delta: FloatArray  # kcal/kg/day, baseline physical-activity coefficient

    @classmethod
    def at_balance(
        cls,
        weight_kg: FloatArray,
        height_m: FloatArray,
        age_y: FloatArray,
        male: NDArray[np.bool_],
        pal: FloatArray,
    ) -> "EnergyState":
        """Start every patient in energy balance at their baseline weight (AT(0) = 0)."""
        weight_kg = np.asarray(weight_kg, dtype=float)
        fat = baseline_fat_kg(weight_kg, height_m, age_y, male)
        lean = weight_kg - fat
        rmr = mifflin_st_jeor_rmr(weight_kg, height_m, age_y, male)
        delta = ((1.0 - BETA_TEF) * pal - 1.0) * rmr / weight_kg
        intake0 = pal * rmr
        k_const = intake0 - GAMMA_L * lean - GAMMA_F * fat - delta * weight_kg
        return cls(fat, lean, np.zeros_like(fat), intake0, k_const, delta)

    @property
    def weight_kg(self) -> FloatArray:
        return self.fat_kg + self.lean_kg

    def copy(self) -> "EnergyState":
        return EnergyState(
            self.fat_kg.copy(), self.lean_kg.copy(), self.adaptive_thermogenesis.copy(),
            self.intake0, self.k_const, self.delta,
        )

    def step(self, delta_intake: FloatArray | float, extra_expenditure: FloatArray | float = 0.0,
             extra_activity_min: FloatArray | float = 0.0) -> None:
        """Advance one day.

        delta_intake: change of energy intake from baseline, kcal/day.
        extra_expenditure: drug-induced change of expenditure, kcal/day (metabolic pathway).
        extra_activity_min: extra light physical activity, minutes/day.
        """
        fat, lean = self.fat_kg, self.lean_kg
        weight = fat + lean
        activity_kcal = extra_activity_min * (LIGHT_ACTIVITY_MET_ABOVE_REST / 60.0) * weight
        intake = self.intake0 + delta_intake
        expenditure_no_synthesis = (
            self.k_const + GAMMA_F * fat + GAMMA_L * lean + self.delta * weight
            + BETA_TEF * delta_intake + self.adaptive_thermogenesis + extra_expenditure + activity_kcal
        )
        r = (intake - expenditure_no_synthesis) / (
            FORBES_C * (1.0 + ETA_L / RHO_L) + fat * (1.0 + ETA_F / RHO_F)
        )
        self.lean_kg = lean + FORBES_C * r / RHO_L
        self.fat_kg = fat + fat * r / RHO_F
        self.adaptive_thermogenesis = self.adaptive_thermogenesis + (
            BETA_AT * delta_intake - self.adaptive_thermogenesis
        ) / TAU_AT


def steady_state_weight_change(
    weight_kg: float, height_m: float, age_y: float, male: bool, pal: float, delta_intake: float
) -> float:
    """Weight change in kg at the new steady state after a sustained intake change (kcal/day).

    Solves ΔEE = ΔEI along the Forbes curve F(L) (fat and lean move together as in the
    dynamic model), with TEF and AT at their steady values βTEF·ΔEI and βAT·ΔEI.
    """
    s = EnergyState.at_balance(
        np.array([weight_kg]), np.array([height_m]), np.array([age_y]), np.array([male]), np.array([pal])
    )
    f0, l0 = float(s.fat_kg[0]), float(s.lean_kg[0])

    def imbalance(fat: float) -> float:
        lean = l0 + RHO_F * FORBES_C / RHO_L * np.log(fat / f0)  # Forbes: dL/dF = C·ρF/(ρL·F)
        ee = (s.k_const[0] + GAMMA_F * fat + GAMMA_L * lean + s.delta[0] * (fat + lean)
              + (BETA_TEF + BETA_AT) * delta_intake)
        return float(s.intake0[0] + delta_intake - ee)

    fat_new = brentq(imbalance, 0.05 * f0, 5.0 * f0)
    lean_new = l0 + RHO_F * FORBES_C / RHO_L * np.log(fat_new / f0)
    return fat_new + lean_new - weight_kg

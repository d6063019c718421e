"""The linear outcome model E[Y | A, L] = Xβ + A·(β_A + X_k β_k) without building its matrix.

With a 0/1 treatment, every block of the outcome model's Gram matrix ZᵀZ, Z = [X, A, A·X_k],
comes from XᵀX over all rows and X_tᵀX_t over the treated rows, so the model is fitted from
two Gram matrices instead of materialising an n × (2p + 1) matrix (at n = 1,000,000 that
matrix alone is about 340 MB and building it cost more than the fit).  Interacting every
column (``"all"``) is the same as separate regressions by arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ketaweight.causal.glm import solve_spd, weighted_gram


@dataclass(frozen=True)
class LinearOutcomeModel:
    """Least-squares coefficients ``coef`` = (β (p), β_A, β_k (len(cols))), the interacted
    design columns ``cols`` and the Gram matrix ``gram`` = ZᵀZ of the rows fitted."""

    coef: np.ndarray
    cols: np.ndarray
    gram: np.ndarray

    def z_dot(self, x: np.ndarray, a: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Z @ v for design rows ``x`` and treatments ``a`` (v has the coefficients' layout)."""
        p = x.shape[1]
        return x @ v[:p] + a * (v[p] + x[:, self.cols] @ v[p + 1 :])

    def counterfactual(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted outcomes (m₁, m₀) for rows ``x`` under treatment and under none."""
        p = x.shape[1]
        m0 = x @ self.coef[:p]
        return m0 + self.coef[p] + x[:, self.cols] @ self.coef[p + 1 :], m0


def fit_outcome_model(x: np.ndarray, a: np.ndarray, y: np.ndarray, cols: np.ndarray) -> LinearOutcomeModel:
    """Ordinary least squares of ``y`` on Z = [x, a, a·x[:, cols]] from blockwise Gram matrices."""
    t = (a == 1).astype(float)
    p, k = x.shape[1], cols.size
    g_all = weighted_gram(x, np.ones(x.shape[0]))
    g_t = weighted_gram(x, t)  # 0/1 weights instead of a copy of the treated rows
    s_t = t @ x
    gram = np.zeros((p + 1 + k, p + 1 + k))
    gram[:p, :p] = g_all
    gram[:p, p] = gram[p, :p] = s_t
    gram[:p, p + 1 :] = g_t[:, cols]
    gram[p + 1 :, :p] = g_t[cols, :]
    gram[p, p] = t.sum()
    gram[p, p + 1 :] = gram[p + 1 :, p] = s_t[cols]
    gram[p + 1 :, p + 1 :] = g_t[np.ix_(cols, cols)]
    xty_t = x.T @ (t * y)
    rhs = np.concatenate([x.T @ y, [t @ y], xty_t[cols]])
    return LinearOutcomeModel(solve_spd(gram, rhs), cols, gram)

"""Nuisance learners: the numpy GLMs (``"linear"``, the default) or a stacked ensemble (``"stacked"``).

``"stacked"`` is a super learner (van der Laan, Polley & Hubbard 2007) over two candidates:

* ``glm`` — a penalised GLM on the study's design (L2-penalised logistic regression for
  probabilities, ridge with the penalty chosen by leave-one-out for means);
* ``boosting`` — the same GLM with shallow gradient-boosted trees (scikit-learn's
  ``HistGradientBoosting*``) on top, which find thresholds and interactions that no term of the design
  names: for means the trees are fitted to the GLM's residuals; for probabilities they get the GLM's
  linear predictor as one more feature.  Trees alone spend most of their splits approximating the
  linear trends the design already has (on the validation grid they left about twice the bias).

The ensemble is the convex combination of the candidates that minimises the held-out loss (squared
error for means, log-loss for probabilities).  Why not scikit-learn's ``StackingRegressor``: inside
cross-fitting it refits every candidate once more per inner fold (four times the cost with three
inner folds); here the candidates' held-out predictions of the outer cross-fitting folds are the
stacking data, so each candidate is fitted once per fold.  The combination weights (one number for
two candidates) are fitted on every row's held-out predictions — a low-dimensional choice, as a
tuning parameter chosen by cross-validation, whose influence on any one row's nuisance is O(1/n).
The weights are reported with every result, so the learner choice is visible.

Any scikit-learn estimator can still be passed to the estimators instead (``propensity_learner`` /
``outcome_learner``), including ``StackingClassifier`` / ``StackingRegressor``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from threadpoolctl import threadpool_limits


from ketaweight.core.vocabulary import LEARNERS, Learner  # noqa: F401  (re-exported: causal.aipw and causal.runner import them from here)

LEARNER_TEXT: dict[str, str] = {
    "linear": "logistic (propensity, censoring) and linear-by-arm (outcome) models on the design (numpy)",
    "stacked": "super learner: convex combination of a penalised GLM and the GLM with gradient-boosted trees "
               "(scikit-learn HistGradientBoosting), weights chosen by held-out loss",
}
"""Each learner choice in words (results and the report say which was used)."""

CANDIDATES: tuple[str, ...] = ("glm", "boosting")
"""Candidate learners of the stacked ensemble, in the order of their weights."""

PROBABILITY_FLOOR = 1e-6
"""Candidate probabilities are kept inside [floor, 1 − floor] before the log-loss is taken."""


def _glm(kind: Literal["classifier", "regressor"]) -> Any:
    if kind == "classifier":
        return LogisticRegression(C=1.0, max_iter=1000)
    return RidgeCV(alphas=np.logspace(-4, 3, 8))


def _trees(kind: Literal["classifier", "regressor"], seed: int) -> Any:
    """Probabilities: depth-3 trees, 60 rounds at learning rate 0.15; means (fitted to both arms
    pooled): depth-4 trees, 100 rounds at learning rate 0.1.  64 bins, at least 20 rows per leaf, no
    early stopping (a fit's cost does not depend on the data): 0.1–0.3 s at 4,000 rows on one core."""
    if kind == "classifier":
        return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.15, max_iter=60, max_bins=64,
                                              min_samples_leaf=20, early_stopping=False, random_state=seed)
    return HistGradientBoostingRegressor(max_depth=4, learning_rate=0.1, max_iter=100, max_bins=64,
                                         min_samples_leaf=20, early_stopping=False, random_state=seed)


class GLMBoostRegressor(BaseEstimator, RegressorMixin):
    """Ridge regression plus gradient-boosted trees fitted to its residuals (prediction = the sum)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> GLMBoostRegressor:
        self.glm_ = _glm("regressor").fit(x, y)
        self.trees_ = _trees("regressor", self.seed).fit(x, y - self.glm_.predict(x))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.glm_.predict(x) + self.trees_.predict(x)


class GLMBoostClassifier(BaseEstimator, ClassifierMixin):
    """Gradient-boosted trees on the features plus a penalised logistic model's linear predictor."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _features(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([x, self.glm_.decision_function(x)])

    def fit(self, x: np.ndarray, y: np.ndarray) -> GLMBoostClassifier:
        self.glm_ = _glm("classifier").fit(x, y)
        self.trees_ = _trees("classifier", self.seed).fit(self._features(x), y)
        self.classes_ = self.trees_.classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.trees_.predict_proba(self._features(x))


def candidate(name: str, kind: Literal["classifier", "regressor"], seed: int) -> Any:
    """A fresh (unfitted) candidate learner of the stacked ensemble (module docstring)."""
    if name == "glm":
        return _glm(kind)
    if name == "boosting":
        return GLMBoostClassifier(seed) if kind == "classifier" else GLMBoostRegressor(seed)
    raise ValueError(f"unknown candidate learner {name!r}; choose from {list(CANDIDATES)}")


def fit_predict(name: str, kind: Literal["classifier", "regressor"], seed: int, x_train: np.ndarray,
                y_train: np.ndarray, x_predict: list[np.ndarray]) -> list[np.ndarray]:
    """Fit one candidate on (x_train, y_train); its predictions (P(y = 1) or means) for each of ``x_predict``.

    A classifier whose training labels are all one value predicts that value's share (0 or 1)."""
    if kind == "classifier" and np.unique(y_train).size < 2:
        share = float(y_train[0]) if y_train.size else 0.5
        return [np.full(len(x), share) for x in x_predict]
    # One thread: OpenMP's spinning workers make small boosting fits many times slower on a busy
    # machine, and the estimators' bootstrap already runs fits side by side.
    with threadpool_limits(limits=1):
        model = candidate(name, kind, seed).fit(x_train, y_train)
        if kind == "classifier":
            return [model.predict_proba(x)[:, 1] for x in x_predict]
        return [model.predict(x) for x in x_predict]


def ensemble_weights(preds: np.ndarray, target: np.ndarray, kind: Literal["classifier", "regressor"],
                     weight: np.ndarray | None = None) -> np.ndarray:
    """Convex combination weights (sum 1, each ≥ 0) of the columns of ``preds`` that minimise the
    (weighted) held-out loss against ``target``: squared error for means (non-negative least squares,
    then normalised), log-loss for probabilities (minimised over the simplex)."""
    c = preds.shape[1]
    w = np.ones(len(target)) if weight is None else weight
    if c == 1:
        return np.ones(1)
    if kind == "regressor":
        root = np.sqrt(w)
        coef, _ = optimize.nnls(preds * root[:, None], target * root)
        total = coef.sum()
        return coef / total if total > 0 else np.full(c, 1.0 / c)
    p = np.clip(preds, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)

    def loss(theta: np.ndarray) -> float:
        mix = p @ _softmax(theta)
        return float(-np.sum(w * (target * np.log(mix) + (1 - target) * np.log1p(-mix))))

    best = optimize.minimize(loss, np.zeros(c), method="Nelder-Mead" if c > 2 else "Powell",
                             options={"xatol": 1e-6, "fatol": 1e-10} if c > 2 else {"xtol": 1e-6, "ftol": 1e-10})
    return _softmax(best.x)


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max())
    return z / z.sum()


def propensity_bound(n: int) -> float:
    """Flexible propensity predictions are kept inside [δ, 1 − δ], δ = 5/(√n · ln n) (Gruber & van der
    Laan 2012, the ``tmle`` package's default), so a boosted tree's 0.999 does not become a weight of 1000."""
    return 5.0 / (np.sqrt(n) * np.log(n)) if n > 2 else 0.025

"""Nuisance learners: the numpy GLMs (``"linear"``, the default) or a stacked ensemble (``"stacked"``, ``"augmented"``).

``"stacked"`` is a super learner (van der Laan, Polley & Hubbard 2007) over two candidates:

* ``glm`` — a penalised GLM on the study's design (L2-penalised logistic regression for
  probabilities, ridge with the penalty chosen by leave-one-out for means);
* ``boosting`` — the same GLM with shallow gradient-boosted trees (scikit-learn's
  ``HistGradientBoosting*``) on top, which find thresholds and interactions that no term of the design
  names: for means the trees are fitted to the GLM's residuals; for probabilities they get the GLM's
  linear predictor as one more feature.  Trees alone spend most of their splits approximating the
  linear trends the design already has (on the validation grid they left about twice the bias).

``"augmented"`` adds a third kind of candidate, ``leaf-glm``: the penalised GLM on the design plus the
leaf indicators of shallow boosted trees that each cross-fitting fold fits, on its training rows, to the
treatment *and* to the outcome's GLM residual (:class:`TreeFeatures`; trees as features of a linear
model, He et al. 2014).  Its propensity candidates are ``leaf-glm`` at two penalties (no plain GLM:
given the choice, the held-out log-loss put half the weight on it and so half the leaves' correction
back — 0.013 kg of bias on the validation grid), its outcome candidates the GLM, the boosting candidate
and ``leaf-glm``; censoring as ``"stacked"``.  On the grid's cohorts the propensity's weight all goes to the
heavier penalty (C = 0.1), and a heavier one still, if offered, would take it and give bias back: the
flexibility is set by this candidate set, not by the log-loss (docs/validation.md, fourth search, has the
penalties, balance and collaborative-TMLE choices tried).  Why:
on the validation grid's ``nonlinear-confounding`` the stacked learner kept a bias of 1.2 SEs although
the same learner on a design holding the scenario's true threshold and product terms is unbiased —
the trees found the terms, but only as boosting's shrunken corrections, and the propensity ensemble
(which puts half its weight on the GLM) not at all.  As GLM columns the terms are fitted at full size,
and each model gets what the other target revealed (docs/validation.md has the candidates tried).
Its held-out propensity is too extreme (the leaves' GLM, fitted on four fifths of the rows, over-fits the
held-out fifth); ``propensity_calibration = "logistic"`` recalibrates it (:func:`calibrate_logit`), at a price
in bias where the confounding is nonlinear (there the outcome model alone is 0.035 kg off and the propensity's
correction carries it) and with CIs too narrow where the plain SE is already right (docs/validation.md, fifth and sixth
searches).

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

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits


from ketaweight.causal.glm import fit_logistic
from ketaweight.core.vocabulary import LEARNERS, Learner  # noqa: F401  (re-exported: causal.aipw and causal.runner import them from here)

LEARNER_TEXT: dict[str, str] = {
    "linear": "logistic (propensity, censoring) and linear-by-arm (outcome) models on the design (numpy)",
    "stacked": "super learner: convex combination of a penalised GLM and the GLM with gradient-boosted trees "
               "(scikit-learn HistGradientBoosting), weights chosen by held-out loss",
    "augmented": "super learner whose penalised GLMs also get the leaf indicators of shallow boosted trees fitted to "
                 "both the treatment and the outcome (propensity: the tree-augmented GLM at two penalties; outcome: GLM, "
                 "GLM with boosted trees, tree-augmented GLM; censoring as stacked), weights chosen by held-out loss",
}
"""Each learner choice in words (results and the report say which was used)."""

@dataclass(frozen=True)
class Ensemble:
    """The candidate learners of each nuisance model of one ensemble learner, in the order of their weights."""

    propensity: tuple[str, ...]
    censoring: tuple[str, ...]
    outcome: tuple[str, ...]

    def uses(self, names: object) -> bool:
        """Whether any nuisance model has a candidate among ``names``."""
        return any(c in names for c in (*self.propensity, *self.censoring, *self.outcome))  # type: ignore[operator]

    def by_part(self, censored: bool) -> dict[str, list[str]]:
        """Candidates by the parts the results' ``ensemble_weights`` are keyed by."""
        parts = {"propensity": list(self.propensity)}
        if censored:
            parts["censoring"] = list(self.censoring)
        return parts | {f"outcome (arm {arm})": list(self.outcome) for arm in (1, 0)}


ENSEMBLES: dict[str, Ensemble] = {
    "stacked": Ensemble(("glm", "boosting"), ("glm", "boosting"), ("glm", "boosting")),
    "augmented": Ensemble(("leaf-glm", "leaf-glm-light"), ("glm", "boosting"), ("glm", "boosting", "leaf-glm")),
}
"""Every learner choice other than ``"linear"``: the candidates of its nuisance models."""

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


CANDIDATE_NAMES: tuple[str, ...] = ("glm", "boosting", "leaf-glm", "leaf-glm-light")
"""Every candidate learner :func:`candidate` can make."""


TREE_STEP = 3.0
"""Rounds × learning rate of :class:`TreeFeatures`' boosting (30 rounds at 0.1): fewer rounds take larger steps,
so the trees reach about as far into the target."""


def tree_rounds(n_rows: int) -> int:
    """Boosting rounds of :class:`TreeFeatures` per target from the training rows: 30·√(rows / 4,000) rounded up,
    between 5 and 30 (30 from about 3,740 rows up, so a 5,000-patient cohort's folds keep 30).

    Why fewer for fewer rows: each round adds up to four leaf columns to the GLMs, so at 500 patients (about
    390 training rows) 30 rounds per target gave about 240 columns for 390 rows; on the validation grid's
    ``small-clinic`` the augmented AIPW's SE was then 0.109 kg against the stacked learner's 0.082, and its
    coverage 98 %.  Ten rounds (this rule at 390 rows) brought the empirical SD from 0.098 to 0.082 and the
    coverage to 96.5 % (200 cohorts; docs/validation.md, seventh search).  The square root keeps the columns
    growing with the rows, as a sieve's basis does, but slower."""
    return int(np.clip(np.ceil(30 * np.sqrt(n_rows / 4000)), 5, 30))


class TreeFeatures:
    """Leaf indicators of shallow boosted trees fitted, on one fold's training rows, both to the treatment
    and to the outcome's residual from the penalised GLM, as extra design columns (``augmented``).

    Why both: the propensity and the outcome models must each be nearly right where the other is wrong
    (the doubly robust estimators' bias is the product of their errors), and a threshold or interaction
    that confounds acts in both; a tree ensemble fitted to one target alone finds what that target shows
    most clearly (the outcome's interactions are the clearer here), and each model's GLM then gets every
    term either found.  Depth-2 trees (pairwise interactions) for each target, :func:`tree_rounds` of them
    (30 from about 3,740 training rows up); scikit-learn's exact ``GradientBoosting*`` because its ``apply`` gives
    the leaves (He et al. 2014's trees-as-features for a linear model)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _trees(self, kind: Literal["classifier", "regressor"], n_rows: int) -> Any:
        model = GradientBoostingClassifier if kind == "classifier" else GradientBoostingRegressor
        rounds = tree_rounds(n_rows)
        return model(n_estimators=rounds, max_depth=2, learning_rate=TREE_STEP / rounds, random_state=self.seed)

    def fit(self, x: np.ndarray, a: np.ndarray, observed: np.ndarray, y: np.ndarray) -> TreeFeatures:
        """x: the baseline design (no intercept) of the training rows; a: their treatment; observed,
        y: which outcomes are observed and the outcomes (y is read only where observed)."""
        self.p_ = x.shape[1]
        self.models_ = []
        with threadpool_limits(limits=1):
            if np.unique(a).size > 1:
                self.models_.append(self._trees("classifier", len(x)).fit(x, a))
            xo, ao, yo = x[observed], a[observed], y[observed]
            xa = np.column_stack([xo, ao, ao[:, None] * xo])
            self.models_.append(self._trees("regressor", len(x)).fit(xo, yo - _glm("regressor").fit(xa, yo).predict(xa)))
        leaves = self._leaves(x)
        seen = np.zeros((leaves.shape[1], int(leaves.max()) + 1), dtype=bool)
        seen[np.arange(leaves.shape[1]), leaves] = True
        # column of (tree, leaf): trees in order, each tree's leaves by node id (OneHotEncoder's order)
        self.columns_ = np.full(seen.shape, -1, dtype=np.intp)
        self.columns_[seen] = np.arange(int(seen.sum()))
        self.n_columns_ = int(seen.sum())
        return self

    def _leaves(self, x: np.ndarray) -> np.ndarray:
        """Node id of each row's leaf in each tree (rows × trees)."""
        return np.column_stack([m.apply(x[:, :self.p_]).reshape(len(x), -1) for m in self.models_]).astype(np.intp)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Leaf indicators (0/1, one column per leaf that a training row reached) of the rows of ``x``, read from
        its first columns (the baseline design); a leaf no training row reached gets no column.

        The one-hot encoding is a table look-up (tree, node id) → column: scikit-learn's ``OneHotEncoder``
        gives the same matrix but validated each of the 60 leaf columns on every call, a fifth of the
        augmented learner's time at 5,000 patients."""
        leaves = self._leaves(x)
        trees = np.broadcast_to(np.arange(leaves.shape[1]), leaves.shape)
        inside = leaves < self.columns_.shape[1]
        column = np.where(inside, self.columns_[trees, np.where(inside, leaves, 0)], -1)
        rows = np.broadcast_to(np.arange(len(x))[:, None], leaves.shape)
        hit = column >= 0
        out = np.zeros((len(x), self.n_columns_))
        out[rows[hit], column[hit]] = 1.0
        return out


class LooRidge(BaseEstimator, RegressorMixin):
    """Ridge regression (intercept not penalised) with the penalty chosen among ``alphas`` by the exact
    leave-one-out squared error: scikit-learn's ``RidgeCV`` (its generalised cross-validation without
    sample weights), computed from one eigendecomposition of the centred X'X, X·V = rows × columns²
    once, and each penalty's leave-one-out residuals (y − ŷ)/(1 − h − 1/n), h = Σ_j (X·V)²_ij/(λ_j + α),
    in rows × columns.  ``RidgeCV`` for a dense design with more rows than columns forms X·H⁻¹ (rows ×
    columns²) once per penalty, and its ``gcv_mode="svd"`` needs a thin SVD of the design: at ~260
    columns (the tree-augmented design) and 5,000 patients those were 60 % and 35 % of the augmented
    learner's time.  Same penalty as ``RidgeCV``, coefficients equal to rounding (1e-12 relative)."""

    def __init__(self, alphas: np.ndarray) -> None:
        self.alphas = alphas

    def fit(self, x: np.ndarray, y: np.ndarray) -> LooRidge:
        x_mean, y_mean = x.mean(axis=0), float(y.mean())
        xc, yc = x - x_mean, y - y_mean
        eig, v = np.linalg.eigh(xc.T @ xc)
        eig = np.clip(eig, 0.0, None)  # X'X is positive semi-definite: a negative eigenvalue is rounding
        xv = xc @ v
        xv2, z = xv * xv, xv.T @ yc
        best_score, best_alpha = np.inf, float(self.alphas[0])
        for alpha in self.alphas:
            d = 1.0 / (eig + alpha)
            loo = (yc - xv @ (d * z)) / (1.0 - xv2 @ d - 1.0 / len(y))
            score = float(np.mean(loo * loo))
            if score < best_score:  # the first of equal scores, as RidgeCV
                best_score, best_alpha = score, float(alpha)
        self.alpha_ = best_alpha
        self.coef_ = v @ (z / (eig + best_alpha))
        self.intercept_ = y_mean - float(x_mean @ self.coef_)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_


class LeafGLM(BaseEstimator):
    """Penalised GLM on the standardised features plus :class:`TreeFeatures`' leaf indicators: L2 logistic
    regression (inverse penalty ``c``) for probabilities, ridge (penalty by leave-one-out) for means.

    (The ridge is :class:`LooRidge`, the plain GLMs' ``RidgeCV``: the trees fitted to their residuals
    would turn a rounding difference into a different split now and then.)"""

    def __init__(self, kind: Literal["classifier", "regressor"], features: TreeFeatures, c: float = 0.1) -> None:
        self.kind, self.features, self.c = kind, features, c

    def _design(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([self.scaler_.transform(x), self.features.transform(x)])

    def fit(self, x: np.ndarray, y: np.ndarray) -> LeafGLM:
        self.scaler_ = StandardScaler().fit(x)
        model = (LogisticRegression(C=self.c, max_iter=2000) if self.kind == "classifier"
                 else LooRidge(alphas=np.logspace(-2, 4, 13)))
        self.model_ = model.fit(self._design(x), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(self._design(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self._design(x))


LEAF_CANDIDATES: dict[str, float] = {"leaf-glm": 0.1, "leaf-glm-light": 1.0}
"""Candidates on the tree-augmented design, by name: the logistic model's inverse L2 penalty (ridge for
means chooses its own)."""


def candidate(name: str, kind: Literal["classifier", "regressor"], seed: int,
              features: TreeFeatures | None = None) -> Any:
    """A fresh (unfitted) candidate learner of an ensemble (module docstring); the ``leaf-glm``
    candidates need the fold's fitted :class:`TreeFeatures`."""
    if name == "glm":
        return _glm(kind)
    if name == "boosting":
        return GLMBoostClassifier(seed) if kind == "classifier" else GLMBoostRegressor(seed)
    if name in LEAF_CANDIDATES:
        if features is None:
            raise ValueError(f"candidate {name!r} needs the fold's tree features")
        return LeafGLM(kind, features, LEAF_CANDIDATES[name])
    raise ValueError(f"unknown candidate learner {name!r}; choose from {list(CANDIDATE_NAMES)}")


def fit_predict(name: str, kind: Literal["classifier", "regressor"], seed: int, x_train: np.ndarray,
                y_train: np.ndarray, x_predict: list[np.ndarray],
                features: TreeFeatures | None = None) -> list[np.ndarray]:
    """Fit one candidate on (x_train, y_train); its predictions (P(y = 1) or means) for each of ``x_predict``.

    A classifier whose training labels are all one value predicts that value's share (0 or 1)."""
    if kind == "classifier" and np.unique(y_train).size < 2:
        share = float(y_train[0]) if y_train.size else 0.5
        return [np.full(len(x), share) for x in x_predict]
    # One thread: OpenMP's spinning workers make small boosting fits many times slower on a busy
    # machine, and the estimators' bootstrap already runs fits side by side.
    with threadpool_limits(limits=1):
        model = candidate(name, kind, seed, features).fit(x_train, y_train)
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


def calibrate_logit(p: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Logistic recalibration (Platt scaling) of held-out probabilities ``p`` against 0/1 ``target``:
    expit(α + β·logit p), (α, β) the maximum-likelihood logistic regression of the target on logit p.
    Returns (recalibrated probabilities, α, β).

    Why: a flexible model's out-of-fold probabilities can be too extreme, as an over-fitted model's are
    (calibration slope β < 1).  The augmented learner's held-out propensity had β = 0.91–0.94 on the
    grid's ``strong-confounding`` cohorts and 0.72–0.80 on ``informative-dropout``; the weights of the too
    extreme propensities make the estimate noisier and its influence-function SE larger still
    (docs/validation.md, fifth search).  A convex combination of the candidates on the probability scale
    cannot shrink them; the SuperLearner package's log-likelihood combination works on the logit scale, as
    here.  Two numbers fitted on every row's held-out predictions, like the ensemble weights (influence
    O(1/n) per row).  Platt scaling rather than isotonic calibration (van der Laan et al. 2024): it keeps
    the propensity smooth and inside (0, 1), so no weight becomes infinite."""
    logit_p = np.log(p) - np.log1p(-p)
    fit = fit_logistic(np.column_stack([np.ones(len(p)), logit_p]), target.astype(float))
    if not fit.converged or fit.separated or not np.all(np.isfinite(fit.coef)):
        raise ValueError("the propensity's logistic recalibration did not converge (held-out predictions separate "
                         "the arms: no overlap)")
    return fit.fitted, float(fit.coef[0]), float(fit.coef[1])


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max())
    return z / z.sum()


def propensity_bound(n: int) -> float:
    """Flexible propensity predictions are kept inside [δ, 1 − δ], δ = 5/(√n · ln n) (Gruber & van der
    Laan 2012, the ``tmle`` package's default), so a boosted tree's 0.999 does not become a weight of 1000."""
    return 5.0 / (np.sqrt(n) * np.log(n)) if n > 2 else 0.025

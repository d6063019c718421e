"""Cross-fitted nuisance models shared by the doubly robust estimators (AIPW, TMLE).

For one split of the rows into folds, every row's nuisances come from models fitted on the
other folds (Chernozhukov et al. 2018):

* e(L) = P(A = 1 | L), the propensity;
* π = P(R = 1 | A, L, V), the probability of an observed outcome given the censoring covariates
  (which may include post-baseline variables V measured before anyone is lost, such as an early
  response score), 1 without censoring;
* Q_a = E[Y | A = a, L, V, R = 1], the outcome regression in each arm, on the baseline design L and,
  when the censoring covariates include post-baseline variables, on V too.

**Sequential regression.**  When the censoring model uses post-baseline variables V, missingness
is at random given (A, L, V), not given (A, L); the outcome regression that the doubly robust
estimators need is then m_a(L) = E[Q_a(L, V) | A = a, L], an iterated conditional expectation
(Bang & Robins 2005): Q_a is fitted on the uncensored rows of arm a, predicted for every row of arm a
(V is observed for everyone), and regressed on L.  The estimators stay consistent when either
(e, π) or (Q, m) is right, instead of relying on π alone for the censored rows.  Without
post-baseline censoring covariates m_a = Q_a and nothing changes.

Learners: :mod:`ketaweight.causal.learners`.  A split's nuisances are a pure function of the data
and the settings, so AIPW and TMLE run side by side on the same rows share one fit
(:func:`cross_fit` remembers the last few splits of each :class:`AnalysisData` object).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import expit
from sklearn.base import clone

from ketaweight.causal.data import AnalysisData
from ketaweight.causal.design import interaction_columns
from ketaweight.causal.glm import fit_linear, fit_logistic
from ketaweight.causal.learners import (ENSEMBLES, LEAF_CANDIDATES, LEARNER_TEXT, PROBABILITY_FLOOR, TreeFeatures,
                                        calibrate_logit, ensemble_weights, fit_predict, propensity_bound)
from ketaweight.causal.outcome import fit_outcome_model
from ketaweight.causal.weights import ModelFacts, censoring_design
from ketaweight.core.vocabulary import PropensityCalibration

Folds = tuple[tuple[np.ndarray, np.ndarray], ...]
ARMS = (1, 0)


def make_folds(n: int, n_folds: int, split: np.random.SeedSequence) -> Folds:
    """(train, test) row masks; one fold means train = test = all rows (no cross-fitting)."""
    if n_folds == 1:
        every = np.ones(n, dtype=bool)
        return ((every, every),)
    fold = np.random.default_rng(split).permutation(n) % n_folds
    return tuple((fold != k, fold == k) for k in range(n_folds))


def post_baseline_columns(data: AnalysisData) -> np.ndarray:
    """Columns of the censoring design that come from covariates outside the baseline covariates
    (post-baseline variables V, e.g. an early response score); empty without censoring."""
    if data.z is None:
        return np.zeros(0, dtype=int)
    baseline = set(data.spec.covariates)
    return np.array([j for j, s in enumerate(data.z.source) if s and s not in baseline], dtype=int)


@dataclass(frozen=True)
class CrossFit:
    """The cross-fitted nuisances of one split (arrays over the analysed rows).

    ``q[a]`` is the out-of-fold E[Y | A = a, L(, V), R = 1] for every row; when ``sequential``,
    ``q_train[k][a]`` holds fold k's in-sample predictions on its training rows of arm a (the
    targets the baseline regression of :func:`baseline_regression` is fitted to).  ``report``
    names the learners, the ensemble weights and how many propensities were bounded.
    """

    folds: Folds
    e: np.ndarray
    pi: np.ndarray
    q: dict[int, np.ndarray]
    sequential: bool
    models: tuple[ModelFacts, ...]
    report: dict[str, Any]
    q_train: tuple[dict[int, np.ndarray], ...] = field(default=(), repr=False)
    features: tuple[TreeFeatures | None, ...] = field(default=(), repr=False)


@dataclass(frozen=True, kw_only=True)
class NuisanceSettings:
    """What determines a split's nuisances (the cache key, besides the data and the split)."""

    learner: str = "linear"
    n_folds: int = 5
    interactions: Sequence[str] | Literal["all"] = "all"
    propensity_learner: Any = None
    outcome_learner: Any = None
    propensity_calibration: PropensityCalibration = "none"

    @property
    def key(self) -> tuple[Any, ...] | None:
        """Hashable identity, or None when user-supplied learners make caching unsafe."""
        if self.propensity_learner is not None or self.outcome_learner is not None:
            return None
        inter = self.interactions if isinstance(self.interactions, str) else tuple(self.interactions)
        return (self.learner, self.n_folds, inter, self.propensity_calibration)


_CACHE: dict[int, tuple[weakref.ref, dict[tuple[Any, ...], CrossFit]]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SPLITS = 16
"""Splits remembered per data object (enough for AIPW and TMLE with repeated cross-fitting)."""


def cross_fit(data: AnalysisData, settings: NuisanceSettings, split: np.random.SeedSequence) -> CrossFit:
    """The nuisances of ``data`` on one split, fitted once per (data object, settings, split)."""
    key = settings.key
    if key is None:
        return _cross_fit(data, settings, split)
    full = (*key, tuple(split.entropy) if isinstance(split.entropy, Sequence) else split.entropy, split.spawn_key)
    with _CACHE_LOCK:
        _purge()
        entry = _CACHE.get(id(data))
        if entry is not None and entry[0]() is data and full in entry[1]:
            return entry[1][full]
    fit = _cross_fit(data, settings, split)
    with _CACHE_LOCK:
        entry = _CACHE.get(id(data))
        if entry is None or entry[0]() is not data:
            entry = (weakref.ref(data), {})
            _CACHE[id(data)] = entry
        if len(entry[1]) >= _CACHE_SPLITS:
            entry[1].pop(next(iter(entry[1])))
        entry[1][full] = fit
    return fit


def _purge() -> None:
    for k in [k for k, (ref, _) in _CACHE.items() if ref() is None]:
        del _CACHE[k]


_FOLD_FITS: OrderedDict[bytes, tuple[np.ndarray, tuple[ModelFacts, ...]]] = OrderedDict()
_FOLD_FITS_LOCK = threading.Lock()
_FOLD_FITS_BYTES = 256 * 2**20
"""Bytes of out-of-fold predictions the shared fold fits may hold (least recently used dropped first;
8 MB per entry at 1,000,000 rows)."""


def _logistic_folds(name: str, x: np.ndarray, y: np.ndarray, folds: Folds,
                    split_key: tuple[Any, ...]) -> tuple[np.ndarray, tuple[ModelFacts, ...]]:
    """Out-of-fold P(y = 1 | x) and the fold fits' facts (each fit warm-started from the previous
    fold's; they differ by O(n^-1/2)), shared across analyses by the content of ``x`` and ``y`` and
    the split.

    Many analyses of one population fit the same propensity (and often censoring) model on the same
    folds: the network's negative controls are 30 outcomes of one treatment on one design, a study's
    outcome on two scales and its negative control more; their :class:`AnalysisData` objects differ,
    so :func:`cross_fit`'s cache (by object) misses, but the fits are a function of these bytes, hence
    shared exactly.  Only the predictions and the facts are kept, never a design."""
    digest = hashlib.sha256(repr((name, x.shape, x.dtype.str, y.dtype.str, split_key)).encode())
    for array in (x, y):  # the fits use the arrays as given (their memory order decides BLAS's rounding)
        digest.update(np.ascontiguousarray(array).data)
    key = digest.digest()
    with _FOLD_FITS_LOCK:
        hit = _FOLD_FITS.get(key)
        if hit is not None:
            _FOLD_FITS.move_to_end(key)
            return hit[0].copy(), hit[1]
    pred = np.empty(len(y))
    models: list[ModelFacts] = []
    start = None
    for k, (train, test) in enumerate(folds):
        tag = "" if len(folds) == 1 else f" (fold {k + 1})"
        fit = fit_logistic(x[train], y[train], start=start)
        start = fit.coef
        models.append(ModelFacts.of(name + tag, fit))
        pred[test] = expit(x[test] @ fit.coef)
    with _FOLD_FITS_LOCK:
        _FOLD_FITS[key] = (pred.copy(), tuple(models))
        while sum(v[0].nbytes for v in _FOLD_FITS.values()) > _FOLD_FITS_BYTES and len(_FOLD_FITS) > 1:
            _FOLD_FITS.popitem(last=False)
    return pred, tuple(models)


def _cross_fit(data: AnalysisData, s: NuisanceSettings, split: np.random.SeedSequence) -> CrossFit:
    x, a, obs, n = data.x.matrix, data.a, data.observed, data.n
    folds = make_folds(n, s.n_folds, split)
    seed = int(split.generate_state(1)[0])
    post = post_baseline_columns(data)
    sequential = post.size > 0
    xz = censoring_design(data) if data.censored else None
    xq = np.column_stack([x, data.z.matrix[:, post]]) if sequential else x  # type: ignore[union-attr]
    cols = interaction_columns(data.x, s.interactions)
    if sequential and s.interactions == "all":
        cols = np.concatenate([cols, x.shape[1] + np.arange(post.size)])
    if s.learner in ENSEMBLES and s.propensity_learner is None and s.outcome_learner is None:
        return _stacked(data, s.learner, folds, seed, xq, xz, sequential, s.propensity_calibration)
    e, pi = np.empty(n), np.ones(n)
    q = {arm: np.empty(n) for arm in ARMS}
    q_train: list[dict[int, np.ndarray]] = []
    models: list[ModelFacts] = []
    split_key = (s.n_folds, tuple(split.entropy) if isinstance(split.entropy, Sequence) else split.entropy,
                 split.spawn_key)
    fold_models: list[tuple[ModelFacts, ...]] = []
    if s.propensity_learner is None:
        e, e_models = _logistic_folds("propensity", x, a, folds, split_key)
        fold_models.append(e_models)
    if xz is not None:
        pi, c_models = _logistic_folds("censoring", xz, obs.astype(float), folds, split_key)
        fold_models.append(c_models)
    models.extend(m for per_fold in zip(*fold_models) for m in per_fold)  # fold by fold: propensity, censoring
    for train, test in folds:
        atr, obs_tr = a[train], obs[train]
        if s.propensity_learner is not None:
            e[test] = clone(s.propensity_learner).fit(x[train], atr).predict_proba(x[test])[:, 1]
        xqtr, ytr = xq[train], data.y[train]
        xo, ao, yo = (xqtr, atr, ytr) if obs_tr.all() else (xqtr[obs_tr], atr[obs_tr], ytr[obs_tr])
        if s.outcome_learner is None:
            model = fit_outcome_model(xo, ao, yo, cols)
            q[1][test], q[0][test] = model.counterfactual(xq[test])
            if sequential:
                q1_tr, q0_tr = model.counterfactual(xqtr)
                q_train.append({1: q1_tr[atr == 1], 0: q0_tr[atr == 0]})
        else:
            learner = clone(s.outcome_learner).fit(np.column_stack([xo, ao]), yo)
            for arm in ARMS:
                q[arm][test] = learner.predict(np.column_stack([xq[test], np.full(int(test.sum()), float(arm))]))
            if sequential:
                q_train.append({arm: learner.predict(np.column_stack([xqtr[atr == arm], np.full(int((atr == arm).sum()), float(arm))]))
                                for arm in ARMS})
    calibration: dict[str, float] = {}
    if s.propensity_calibration == "logistic":
        e, calibration = _calibrated(e, a)
    report = {"learner": "custom" if (s.propensity_learner is not None or s.outcome_learner is not None) else "linear",
              "description": LEARNER_TEXT["linear"] if s.propensity_learner is None and s.outcome_learner is None else
              f"propensity {type(s.propensity_learner).__name__ if s.propensity_learner is not None else 'logistic (numpy)'}, "
              f"outcome {type(s.outcome_learner).__name__ if s.outcome_learner is not None else 'linear by arm (numpy)'}",
              "sequential_outcome_regression": sequential,
              **({"propensity_calibration": calibration} if calibration else {})}
    return CrossFit(folds, e, pi, q, sequential, tuple(models), report, tuple(q_train))


def _calibrated(e: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The cross-fitted propensity recalibrated (:func:`~ketaweight.causal.learners.calibrate_logit`) and the
    fitted intercept and slope (reported with the result)."""
    fitted, intercept, slope = calibrate_logit(np.clip(e, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR), a)
    return fitted, {"intercept": intercept, "slope": slope}


def with_arm(x: np.ndarray, arm: float | np.ndarray) -> np.ndarray:
    """Features of the pooled outcome learners: [x, A, A·x] (A a 0/1 array or one arm for every row)."""
    a = np.broadcast_to(np.asarray(arm, dtype=float), (x.shape[0],))
    return np.column_stack([x, a, a[:, None] * x])


def _stacked(data: AnalysisData, learner: str, folds: Folds, seed: int, xq: np.ndarray, xz: np.ndarray | None,
             sequential: bool, propensity_calibration: PropensityCalibration = "none") -> CrossFit:
    """The super learner's nuisances (see :mod:`ketaweight.causal.learners`), each from the candidates
    ``ENSEMBLES[learner]`` names for its role.

    Outcome learners are fitted to both arms together on [x, A, A·x]: the GLM part then has a slope per
    arm (as the linear default), and the trees learn the confounders' shape from every row instead of
    one arm's (on the validation grid, pooling cut the outcome model's excess error by about half)."""
    x, a, obs, n = data.x.matrix[:, 1:], data.a, data.observed, data.n
    xq = xq[:, 1:]
    xc = None if xz is None else xz[:, 1:]
    roles = ENSEMBLES[learner]
    pe = np.empty((n, len(roles.propensity)))
    pc = np.ones((n, len(roles.censoring)))
    pq = {arm: np.empty((n, len(roles.outcome))) for arm in ARMS}
    train_pred: list[dict[int, np.ndarray]] = []  # per fold, arm → (rows of arm in train, candidates)
    fold_features: list[TreeFeatures | None] = []
    for train, test in folds:
        atr = a[train]
        feats = (TreeFeatures(seed).fit(x[train], atr, obs[train], data.y[train])
                 if roles.uses(LEAF_CANDIDATES) else None)
        fold_features.append(feats)
        for j, name in enumerate(roles.propensity):
            (pe[test, j],) = fit_predict(name, "classifier", seed, x[train], atr, [x[test]], feats)
        for j, name in enumerate(roles.censoring if xc is not None else ()):
            (pc[test, j],) = fit_predict(name, "classifier", seed, xc[train], obs[train].astype(float), [xc[test]])
        rows = train & obs
        targets = [with_arm(xq[test], 1.0), with_arm(xq[test], 0.0)]
        if sequential:
            targets += [with_arm(xq[train & (a == 1)], 1.0), with_arm(xq[train & (a == 0)], 0.0)]
        cand = [fit_predict(name, "regressor", seed, with_arm(xq[rows], a[rows]), data.y[rows], targets, feats)
                for name in roles.outcome]
        pq[1][test] = np.column_stack([p[0] for p in cand])
        pq[0][test] = np.column_stack([p[1] for p in cand])
        train_pred.append({1: np.column_stack([p[2] for p in cand]), 0: np.column_stack([p[3] for p in cand])}
                          if sequential else {})
    weights: dict[str, list[float]] = {}
    w_e = ensemble_weights(pe, a, "classifier")
    weights["propensity"] = w_e.tolist()
    bound = propensity_bound(n)
    raw_e = pe @ w_e
    calibration: dict[str, float] = {}
    if propensity_calibration == "logistic":  # before the bound, which then applies to what is used
        raw_e, calibration = _calibrated(raw_e, a)
    e = np.clip(raw_e, bound, 1 - bound)
    pi = np.ones(n)
    if xc is not None:
        w_c = ensemble_weights(pc, obs.astype(float), "classifier")
        weights["censoring"] = w_c.tolist()
        pi = np.clip(pc @ w_c, bound, 1.0)
    q: dict[int, np.ndarray] = {}
    w_q: dict[int, np.ndarray] = {}
    for arm in ARMS:
        rows = obs & (a == arm)
        w_q[arm] = ensemble_weights(pq[arm][rows], data.y[rows], "regressor")
        weights[f"outcome (arm {arm})"] = w_q[arm].tolist()
        q[arm] = pq[arm] @ w_q[arm]
    q_train = tuple({arm: fold[arm] @ w_q[arm] for arm in ARMS} for fold in train_pred) if sequential else ()
    report = {"learner": learner, "description": LEARNER_TEXT[learner], "candidates": roles.by_part(xc is not None),
              "ensemble_weights": weights, "propensity_bound": bound,
              **({"propensity_calibration": calibration} if calibration else {}),
              "propensity_bounded_rows": int(np.sum(raw_e != e)), "sequential_outcome_regression": sequential}
    return CrossFit(folds, e, pi, q, sequential, (), report, q_train, tuple(fold_features))


def baseline_regression(data: AnalysisData, cf: CrossFit, learner: str,
                        target: Callable[[int, np.ndarray], np.ndarray], *, seed: int = 0,
                        clip: tuple[float, float] | None = None) -> tuple[dict[int, np.ndarray], dict[str, list[float]]]:
    """m_a(L) = E[target(a, Q_a) | A = a, L] out of fold for every row (the sequential regression's second step).

    ``target(a, q)`` maps arm a's Q_a predictions to the values regressed (the identity for AIPW; the
    targeted Q for TMLE).  Fold k's model is fitted on its training rows of arm a, to the in-sample
    ``cf.q_train[k][a]``, so every nuisance of a held-out row comes from the other folds only.
    Returns the predictions per arm and, for the stacked learner, the ensemble weights."""
    x, a, n = data.x.matrix, data.a, data.n
    out = {arm: np.empty(n) for arm in ARMS}
    weights: dict[str, list[float]] = {}
    stacked = learner in ENSEMBLES
    names = ENSEMBLES[learner].outcome if stacked else ()
    cand = {arm: np.empty((n, len(names))) for arm in ARMS}
    for k, (train, test) in enumerate(cf.folds):
        if stacked:  # both arms' targets in one pooled fit on [x, A, A·x], as the outcome learners
            rows = train & (a == 1), train & (a == 0)
            feats = np.vstack([with_arm(x[rows[0], 1:], 1.0), with_arm(x[rows[1], 1:], 0.0)])
            y = np.concatenate([target(1, cf.q_train[k][1]), target(0, cf.q_train[k][0])])
            for j, name in enumerate(names):
                cand[1][test, j], cand[0][test, j] = fit_predict(
                    name, "regressor", seed, feats, y, [with_arm(x[test, 1:], 1.0), with_arm(x[test, 1:], 0.0)],
                    cf.features[k])
            continue
        for arm in ARMS:
            rows_a = train & (a == arm)
            out[arm][test] = x[test] @ fit_linear(x[rows_a], target(arm, cf.q_train[k][arm])).coef
    if stacked:
        for arm in ARMS:
            rows = a == arm
            w = ensemble_weights(cand[arm][rows], target(arm, cf.q[arm][rows]), "regressor")
            weights[f"baseline regression (arm {arm})"] = w.tolist()
            out[arm] = cand[arm] @ w
    if clip is not None:
        out = {arm: np.clip(v, *clip) for arm, v in out.items()}
    return out, weights

"""Names that more than one layer must agree on, declared once.

``Method`` lists the estimators a study may name in ``[analysis] methods``; the study spec (in
``study/``) validates against it and the estimator registry (``causal.runner.ESTIMATORS``, a layer
above) must register exactly these names (checked at import and by a test), so a typo in a study
file fails at load, naming the file and key.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["crude", "standardization", "ipw", "aipw", "g-estimation"]
METHODS: tuple[str, ...] = get_args(Method)
"""Estimator method names, in the order results are reported."""

DEFAULT_CI_LEVEL = 0.95
"""Confidence level of every interval unless a caller says otherwise (``ci_level`` everywhere)."""

"""Shared test settings. Fuzzing budgets: a short one inside `make test`, a long one under `make fuzz`
(HYPOTHESIS_PROFILE=fuzz: 10,000 inputs per target)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("test", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))

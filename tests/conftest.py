"""Shared test settings. Fuzzing budgets: a short one inside `make test`, a long one under `make fuzz`
(HYPOTHESIS_PROFILE=fuzz: 10,000 inputs per target, or FUZZ_EXAMPLES)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from pg_server import bin_dir, throwaway_server

settings.register_profile("test", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))


@pytest.fixture(scope="session")
def postgres_url():
    """One throwaway PostgreSQL server per test session (per xdist worker), from Debian's binaries, on
    127.0.0.1 and a free port; its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
    bindir = bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (make test installs Debian's postgresql package)")
    with throwaway_server(bindir) as url:
        yield url

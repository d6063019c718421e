"""Shared fixtures for the signals tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "faers"
Q1 = FIXTURES / "faers_ascii_2023q1.zip"
Q2 = FIXTURES / "faers_ascii_2023Q2.zip"


@pytest.fixture(scope="session")
def statin49() -> pd.DataFrame:
    """MDDC's statin49 table: 50 events (last 'Other AE') × 7 columns (6 statins + 'Other')."""
    from MDDC.datasets import load_statin49_data

    return load_statin49_data()


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory) -> Path:
    """Both hand-built quarters ingested into one store (read-only use)."""
    from ketaweight.signals.faers import ingest_faers

    path = tmp_path_factory.mktemp("faers") / "store.duckdb"
    ingest_faers([Q1, Q2], path)
    return path


@pytest.fixture(scope="session")
def model_table():
    """60,000 cells drawn from DuMouchel's model with the openEBGM CAERS prior (known truth)."""
    rng = np.random.default_rng(7)
    theta = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)
    e = np.exp(rng.normal(-1.0, 1.5, size=200_000))
    comp = rng.random(e.size) < theta[4]
    lam = np.where(comp, rng.gamma(theta[0], 1 / theta[1], e.size), rng.gamma(theta[2], 1 / theta[3], e.size))
    n = rng.poisson(lam * e)
    keep = n > 0
    return theta, n[keep][:60_000].astype(float), e[keep][:60_000]


def copy_fixture(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    dst = dst_dir / (name or src.name)
    shutil.copy(src, dst)
    return dst


@pytest.fixture(scope="session")
def q1_zip() -> Path:
    return Q1


@pytest.fixture(scope="session")
def q2_zip() -> Path:
    return Q2

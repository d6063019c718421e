"""`network validate` runs its networks through core/replicates.py: on a Dask cluster they give the
loop's rows to the last digit, and a rerun resumes from the checkpoint without simulating again."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketaweight.network import validation

distributed = pytest.importorskip("distributed")


@pytest.mark.xdist_group("dask")
def test_network_validation_on_dask_equals_the_loop_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = dict(scenarios=("null",), networks=2, sites=2, patients=500, seed=5)
    loop = validation.validate_network(**kw, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        remote = validation.validate_network(**kw, scheduler=client, checkpoint=tmp_path / "ckpt.json")
    assert remote == loop  # intervals, p-values and truths survive the workers and the JSON checkpoint exactly
    assert {r.interval for r in loop} >= {"calibrated network estimate", "fixed, uncalibrated"}
    assert all(r.networks == 2 and r.type_i is not None for r in loop)  # the null scenario: type-I error reported

    def no_more_simulation(args: tuple) -> dict:
        raise AssertionError(f"network {args} simulated again although the checkpoint has it")

    monkeypatch.setattr(validation, "one_network", no_more_simulation)
    assert validation.validate_network(**kw, workers=1, checkpoint=tmp_path / "ckpt.json") == loop
    assert (tmp_path / "ckpt-null.json").exists()

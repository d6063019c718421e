"""Replicates in a loop, in a pool and on a Dask cluster give the same numbers to the last digit;
a killed worker and a resumed run change nothing (core/replicates.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from ketaweight.causal.ipw import IPW
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.causal.standardization import Standardization
from ketaweight.core.errors import InputError
from ketaweight.core.replicates import Checkpoint, run_replicates, spawn_seeds, validate_scheduler

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("dask")  # one xdist worker runs the Dask tests (one cluster start)

# The worker processes of the killed-worker test unpickle these functions by value (this test module is
# not importable there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def noisy_mean(shared: tuple[float, int], r: int, seed: np.random.SeedSequence) -> float:
    """A replicate whose value depends on every bit of its own stream (and on nothing else)."""
    scale, n = shared
    x = np.random.default_rng(seed).standard_normal(n) * scale
    return float(np.sum(np.exp(x / 3)) / n + r * 1e-9)


@pytest.fixture(scope="module")
def client():
    """A Dask cluster of two in-process workers (fast to start; the same scheduler as a real one)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_loop_pool_and_dask_agree_to_the_last_digit(client) -> None:
    seeds = spawn_seeds(17, 40)
    loop = run_replicates(noisy_mean, seeds, shared=(1.5, 500))
    threads = run_replicates(noisy_mean, seeds, shared=(1.5, 500), workers=3, pool="threads")
    seen: list[int] = []
    dask = run_replicates(noisy_mean, seeds, shared=(1.5, 500), scheduler=client, on_replicate=seen.append)
    assert loop == threads == dask  # exact float equality, replicate by replicate
    assert sum(seen) == 40  # progress reported for every replicate, as they finished on the workers
    assert len(set(loop)) == 40  # the replicates really differ (a shared stream would not)
    assert run_replicates(noisy_mean, spawn_seeds(18, 40), shared=(1.5, 500)) != loop


def test_bootstrap_on_dask_equals_the_local_bootstrap(client) -> None:
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(int)
    y = 2.0 * a + x + rng.normal(size=n)
    table = pd.DataFrame({"a": a, "y": y, "x": x})
    spec = AnalysisSpec(treatment="a", outcome="y", covariates=("x",))
    for cls in (Standardization, IPW):
        local = cls(variance="bootstrap", n_bootstrap=30, seed=5, n_jobs=2).fit(table, spec)
        remote = cls(variance="bootstrap", n_bootstrap=30, seed=5, scheduler=client).fit(table, spec)
        assert (remote.estimate, remote.se, remote.ci_low, remote.ci_high) == (local.estimate, local.se, local.ci_low, local.ci_high)
        assert local.se > 0
        assert "scheduler" not in remote.settings["estimator"]  # where it ran is not a setting of the result


_MARKER = "KETAWEIGHT_TEST_KILL_MARKER"


def dies_once(shared: None, r: int, seed: np.random.SeedSequence) -> float:
    """Replicate 3 kills its worker process the first time it runs (a marker file says it did)."""
    marker = Path(os.environ[_MARKER])
    if r == 3 and not marker.exists():
        marker.write_text("killed")
        os._exit(1)
    return noisy_mean((1.0, 200), r, seed)


def test_a_killed_worker_does_not_change_the_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setenv(_MARKER, str(marker))  # inherited by the worker processes started below
    seeds = spawn_seeds(99, 8)
    expected = [noisy_mean((1.0, 200), r, s) for r, s in enumerate(seeds)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit="512MiB") as cluster, distributed.Client(cluster) as c:
        got = run_replicates(dies_once, seeds, scheduler=c)
    assert marker.read_text() == "killed"  # a worker did die, halfway through the run
    assert got == expected


class Interrupted(Exception):
    pass


def test_a_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    seeds = spawn_seeds(7, 12)
    full = run_replicates(noisy_mean, seeds, shared=(2.0, 300))
    ran: list[int] = []

    def stops_at_8(shared, r, seed):
        if r == 8:
            raise Interrupted
        ran.append(r)
        return noisy_mean(shared, r, seed)

    ckpt = Checkpoint(tmp_path / "reps.json", {"what": "test", "n": 300})
    with pytest.raises(Interrupted):
        run_replicates(stops_at_8, seeds, shared=(2.0, 300), checkpoint=ckpt)
    assert sorted(ckpt.load(seeds)) == list(range(8))  # what finished before the stop was kept
    ran.clear()

    def counts(shared, r, seed):
        ran.append(r)
        return noisy_mean(shared, r, seed)

    assert run_replicates(counts, seeds, shared=(2.0, 300), checkpoint=ckpt) == full
    assert ran == [8, 9, 10, 11]  # only the replicates the checkpoint lacked
    assert not list(tmp_path.glob(".reps.json.*"))  # no temporary file left behind

    pooled = Checkpoint(tmp_path / "pooled.json", {"what": "test", "n": 300})
    with pytest.raises(Interrupted):  # a pool stops at the first failure, and keeps what finished
        run_replicates(stops_at_8, seeds, shared=(2.0, 300), workers=2, pool="threads", checkpoint=pooled)
    kept = pooled.load(seeds)
    assert 8 not in kept and all(kept[r] == full[r] for r in kept)

    other = Checkpoint(tmp_path / "reps.json", {"what": "test", "n": 301})
    with pytest.raises(InputError, match="another run") as err:
        run_replicates(noisy_mean, seeds, shared=(2.0, 301), checkpoint=other)
    # the message names the setting that differs, not both runs whole
    assert "(n: the file's 300, this run's 301)" in str(err.value) and "'what'" not in str(err.value)
    with pytest.raises(InputError, match="seed"):
        run_replicates(noisy_mean, spawn_seeds(8, 12), shared=(2.0, 300), checkpoint=ckpt)


def test_a_run_with_more_replicates_extends_a_checkpoint_and_one_with_fewer_is_refused(tmp_path: Path) -> None:
    """spawn_seeds' replicate r does not depend on how many there are, so 8 then 12 replicates give the 12
    of one run, and only the 4 new ones run the second time."""
    ckpt = Checkpoint(tmp_path / "reps.json", {"what": "test", "n": 300})
    run_replicates(noisy_mean, spawn_seeds(7, 8), shared=(2.0, 300), checkpoint=ckpt)
    ran: list[int] = []

    def counts(shared, r, seed):
        ran.append(r)
        return noisy_mean(shared, r, seed)

    more = run_replicates(counts, spawn_seeds(7, 12), shared=(2.0, 300), checkpoint=ckpt)
    assert ran == [8, 9, 10, 11]
    assert more == run_replicates(noisy_mean, spawn_seeds(7, 12), shared=(2.0, 300))
    with pytest.raises(InputError, match="beyond this run's 6"):
        run_replicates(noisy_mean, spawn_seeds(7, 6), shared=(2.0, 300), checkpoint=ckpt)


def fails_first_then_sleeps(shared: None, r: int, seed: np.random.SeedSequence) -> float:
    """Replicate 0 fails at once; every other one would take a minute."""
    if r == 0:
        time.sleep(0.5)
        raise ValueError("replicate 0 failed")
    time.sleep(60)
    return float(r)


def test_a_process_pool_stops_its_running_and_prefetched_replicates() -> None:
    """A failure (as Ctrl-C) ends the worker processes at once: none goes on with a replicate it had
    started or prefetched (before, a pool of long replicates took minutes to let a Ctrl-C out)."""
    import multiprocessing

    with pytest.raises(ValueError, match="replicate 0 failed"):
        run_replicates(fails_first_then_sleeps, spawn_seeds(1, 6), workers=2, pool="processes")
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()  # no worker left running a minute-long replicate


def test_validation_on_dask_equals_the_local_run(client, tmp_path: Path) -> None:
    from ketaweight.pipelines.validation import validate

    kw = dict(scenarios=("null",), replicates=3, n_patients=600, truth_patients=2000, seed=11)
    local = validate(**kw, workers=1)
    remote = validate(**kw, scheduler=client, checkpoint=tmp_path / "ckpt.json")
    assert local == remote
    resumed = validate(**kw, workers=1, checkpoint=tmp_path / "ckpt.json")  # everything from the checkpoint
    assert resumed == local


def test_scheduler_form_is_checked_before_a_run() -> None:
    assert validate_scheduler(None) is None
    assert validate_scheduler("local:2") == "local:2"
    assert validate_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local:two", "dask"):
        with pytest.raises(ValueError, match="scheduler"):
            validate_scheduler(bad)

"""Independent replicates, in this process or on a Dask cluster, with the same results to the last digit.

A replicate is one call ``fn(shared, r, seed)`` for ``r`` in ``0 … n-1``: ``shared`` is the read-only
input every replicate needs (sent to each Dask worker once), ``seed`` is replicate r's own seed.  By
default the seeds are ``numpy.random.SeedSequence(seed).spawn(n)`` (:func:`spawn_seeds`); a caller with
its own fixed per-replicate seeds passes them.  Because replicate r's result depends only on
(``shared``, r, its seed), the results are the same whatever ran them: a plain loop, a local thread or
process pool, or any number of Dask workers in any order.

Where it runs (``scheduler``):

* ``None`` — this process: a plain loop (``workers=1``), or a pool of ``workers`` threads or processes;
* ``"local"`` or ``"local:N"`` — a Dask ``LocalCluster`` of N single-threaded worker processes
  (default: one per core) started for the run and closed after it;
* a scheduler address (``tcp://host:8786``) — an existing Dask cluster (``dask scheduler`` and
  ``dask worker``), see docs/scale.md;
* a ``distributed.Client`` — use that client (the tests use an in-process ``LocalCluster``).

A worker that dies while running a replicate is replaced by Dask and its replicate run again
elsewhere (up to ``distributed.scheduler.allowed-failures`` times); a replicate that raises is retried
``retries`` times.  With a ``checkpoint`` file, every finished replicate is kept there (rewritten
atomically, at most every ``CHECKPOINT_EVERY_S`` seconds and at the end, also after an error or Ctrl-C),
and a later run with the same checkpoint runs only the replicates it lacks.  Results must be JSON values
(numbers, strings, lists, dicts; floats round-trip exactly; tuples come back as lists).

Dask (``distributed``) is imported only when a cluster is asked for: ``pip install 'ketaweight[dask]'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from ketaweight.core.errors import InputError, Location

R = TypeVar("R")
Seed = int | np.random.SeedSequence
ReplicateFn = Callable[[Any, int, Seed], R]
Pool = Literal["threads", "processes"]

CHECKPOINT_EVERY_S = 2.0
"""Least time between two rewrites of a checkpoint file (s); it is always written at the end."""

CHECKPOINT_FORMAT = "ketaweight-replicates/1"


def spawn_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """The seeds of ``n`` replicates: ``SeedSequence(seed).spawn(n)`` (independent streams, one each)."""
    return np.random.SeedSequence(seed).spawn(n)


def _seed_json(seed: Seed) -> Any:
    """A seed as JSON, to check that a checkpoint belongs to the same replicates."""
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy
        return {"entropy": [int(x) for x in entropy] if isinstance(entropy, Sequence) else int(entropy),
                "spawn_key": [int(k) for k in seed.spawn_key]}
    return int(seed)


def _differences(theirs: Any, ours: Any, path: str = "") -> str:
    """Where two JSON values differ, as 'key.sub: the file's X, this run's Y' (at most three places), so a
    mismatch names the setting instead of printing both runs whole."""
    found: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{at}.{k}" if at else str(k))
        elif _canonical(a) != _canonical(b):
            found.append(f"{at or 'value'}: the file's {a!r}, this run's {b!r}")

    walk(theirs, ours, path)
    more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
    return "; ".join(found[:3]) + more


@dataclass(frozen=True)
class Checkpoint:
    """A file of finished replicates (JSON): ``run`` identifies the run (the caller's description of
    everything its results depend on, e.g. study, scenario, patients); the file also keeps every
    replicate's seed, so a checkpoint of another run is refused instead of mixed in.  The number of
    replicates is not part of the run: where replicate r's seed does not depend on how many there are
    (``spawn_seeds``, or a caller's fixed seeds), a run with more replicates extends a checkpoint of fewer."""

    path: Path
    run: dict[str, Any]

    def load(self, seeds: Sequence[Seed]) -> dict[int, Any]:
        """The finished replicates kept in the file ({} when there is none yet)."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError([(Location(str(self.path)), f"not a readable replicate checkpoint: {exc}")]) from exc
        expected = {"format": CHECKPOINT_FORMAT, "run": self.run}
        for key, value in expected.items():
            if not isinstance(data, dict) or _canonical(data.get(key)) != _canonical(value):
                theirs = data.get(key) if isinstance(data, dict) else None
                raise InputError([(Location(str(self.path), column=key),
                                   f"the checkpoint belongs to another run ({_differences(theirs, value)}); use "
                                   "another checkpoint file or delete this one")])
        done: dict[int, Any] = {}
        for entry in data.get("done", []):
            r = entry["r"]
            if not 0 <= r < len(seeds):
                raise InputError([(Location(str(self.path), column=f"done[r={r}]"),
                                   f"the checkpoint holds replicate {r}, beyond this run's {len(seeds)}; ask for at "
                                   f"least {r + 1} replicates or use another checkpoint file")])
            if _canonical(entry["seed"]) != _canonical(_seed_json(seeds[r])):
                raise InputError([(Location(str(self.path), column=f"done[r={r}].seed"),
                                   "replicate seed differs from this run's; the checkpoint belongs to another run")])
            done[int(r)] = entry["result"]
        return done

    def save(self, done: dict[int, Any], seeds: Sequence[Seed]) -> None:
        """Write every finished replicate, atomically (a temporary file moved into place)."""
        payload = {"format": CHECKPOINT_FORMAT, "run": self.run, "replicates": len(seeds),
                   "done": [{"r": r, "seed": _seed_json(seeds[r]), "result": done[r]} for r in sorted(done)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, allow_nan=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def run_replicates(
    fn: ReplicateFn,
    seeds: Sequence[Seed],
    *,
    shared: Any = None,
    scheduler: Any = None,
    workers: int = 1,
    pool: Pool = "processes",
    retries: int = 2,
    checkpoint: Checkpoint | None = None,
    on_replicate: Callable[[int], None] | None = None,
    name: str = "replicate",
) -> list[Any]:
    """``[fn(shared, r, seeds[r]) for r in range(len(seeds))]``, wherever ``scheduler`` says (module docstring).

    ``fn`` must be a module-level function (or a ``functools.partial`` of one) when it runs in other
    processes.  ``workers``/``pool`` apply to ``scheduler=None`` only.  ``on_replicate(1)`` is called in
    this process as each replicate finishes (replicates resumed from the checkpoint are reported at
    once).  ``name`` prefixes the Dask task keys (shown on the Dask dashboard).
    """
    n = len(seeds)
    done: dict[int, Any] = checkpoint.load(seeds) if checkpoint else {}
    if on_replicate is not None and done:
        on_replicate(len(done))
    todo = [r for r in range(n) if r not in done]
    last_save = time.monotonic()

    def finished(r: int, result: Any) -> None:
        nonlocal last_save
        done[r] = result
        if on_replicate is not None:
            on_replicate(1)
        if checkpoint is not None and time.monotonic() - last_save >= CHECKPOINT_EVERY_S:
            checkpoint.save(done, seeds)
            last_save = time.monotonic()

    try:
        if todo:
            for r, result in _execute(fn, todo, seeds, shared, scheduler, workers, pool, retries, name):
                finished(r, result)
    finally:
        if checkpoint is not None and todo:
            checkpoint.save(done, seeds)
    return [done[r] for r in range(n)]


def _execute(fn: ReplicateFn, todo: list[int], seeds: Sequence[Seed], shared: Any, scheduler: Any,
             workers: int, pool: Pool, retries: int, name: str) -> Iterator[tuple[int, Any]]:
    """(r, result) pairs as replicates finish, in any order."""
    if scheduler is None:
        if workers <= 1:
            for r in todo:
                yield r, fn(shared, r, seeds[r])
            return
        executor: Executor = (ThreadPoolExecutor if pool == "threads" else ProcessPoolExecutor)(max_workers=workers)
        futures = {executor.submit(fn, shared, r, seeds[r]): r for r in todo}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:
            # Ctrl-C or a failed replicate: stop now, not after the replicates already running.  The
            # executor API cannot stop a running task (terminate_workers() arrives in Python 3.14), so
            # worker processes are ended through the pool's own table of them (read before shutdown(),
            # which empties it; a worker would otherwise go on with the replicates it had prefetched).
            processes = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise
        executor.shutdown(wait=True)
        return
    yield from _on_dask(fn, todo, seeds, shared, scheduler, retries, name)


def _on_dask(fn: ReplicateFn, todo: list[int], seeds: Sequence[Seed], shared: Any, scheduler: Any,
             retries: int, name: str) -> Iterator[tuple[int, Any]]:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ValueError("replicates on Dask need the 'distributed' package: pip install 'ketaweight[dask]'") from exc
    with _client(distributed, scheduler) as client:
        data = client.scatter(shared, broadcast=True) if shared is not None else None
        futures = {client.submit(fn, data, r, seeds[r], key=f"{name}-{r}-{_token(seeds[r])}", retries=retries,
                                 pure=False): r for r in todo}
        try:
            for fut in distributed.as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            client.cancel(list(futures))


def _token(seed: Seed) -> str:
    """A short tag of a seed, so two runs on one cluster never share task keys."""
    return hashlib.sha256(_canonical(_seed_json(seed)).encode()).hexdigest()[:8]


class _client:
    """A Dask client for ``scheduler``: a given Client (left open), a LocalCluster started and closed
    here (``"local"`` / ``"local:N"``), or a connection to a scheduler address."""

    def __init__(self, distributed: Any, scheduler: Any) -> None:
        self._d, self._scheduler = distributed, scheduler
        self._owned: list[Any] = []

    def __enter__(self) -> Any:
        d, s = self._d, self._scheduler
        if isinstance(s, d.Client):
            return s
        if not isinstance(s, str) or not s:
            raise ValueError(f"scheduler={s!r}: give 'local', 'local:N' or a Dask scheduler address (tcp://host:8786)")
        if s == "local" or s.startswith("local:"):
            n = parse_local_workers(s)
            cluster = d.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
            self._owned.append(cluster)
            client = d.Client(cluster)
        else:
            try:
                client = d.Client(s, timeout="20s")
            except OSError as exc:
                raise InputError([(Location("--scheduler"), f"cannot reach the Dask scheduler at {s}: {exc}")]) from exc
        self._owned.insert(0, client)
        return client

    def __exit__(self, *exc: object) -> None:
        for thing in self._owned:
            thing.close()


def parse_local_workers(scheduler: str) -> int:
    """Workers of ``"local"`` (one per core) or ``"local:N"`` (N ≥ 1)."""
    if scheduler == "local":
        return max(1, os.cpu_count() or 1)
    text = scheduler.removeprefix("local:")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"scheduler={scheduler!r}: 'local:N' needs a whole number of workers N >= 1")
    return int(text)


def validate_scheduler(scheduler: str | None) -> str | None:
    """``scheduler`` checked for form before a long run (``None``, ``local``, ``local:N`` or an address)."""
    if scheduler is None or scheduler == "":
        return None
    if scheduler == "local" or scheduler.startswith("local:"):
        parse_local_workers(scheduler)
        return scheduler
    scheme = scheduler.split("://", 1)[0] if "://" in scheduler else None
    if (scheme is None and ":" not in scheduler) or (scheme is not None and scheme not in DASK_SCHEMES):
        raise ValueError(f"scheduler={scheduler!r}: give 'local', 'local:N' or a Dask scheduler address "
                         f"such as tcp://10.0.0.5:8786 (schemes: {', '.join(DASK_SCHEMES)})")
    return scheduler


DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
"""The address schemes of Dask's communication layer (``distributed.comm``), checked before it is imported."""


__all__ = ["Checkpoint", "parse_local_workers", "run_replicates", "spawn_seeds", "validate_scheduler"]

"""Per-process caches of what pages compute, keyed by the version of what they were computed from.

Two versions exist: the **store version** (:attr:`ketaweight.app.storelock.Reading.version`, the store
file's identity, size and time — it changes only when a load writes the store) for a patient's record and
its charts, and the **state version** (:func:`ketaweight.app.db.state_version`, one counter in the app
database that every change of alerts, acknowledgements, patient assignments, runs or comments adds one to)
for the aggregates: open-alert counts, the patient list, the answer page's material.  A key holds its
version, so a change makes every process compute afresh on its next request; nothing is ever invalidated
by hand.  Keys also hold the scope the value was computed for (all clinics, or one clinic), so the cache
never carries one clinic's view to another; role checks and audit entries happen on every request as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from ketaweight.app.db import state_version

T = TypeVar("T")


class VersionedCache:
    """A thread-safe least-recently-used map of ``key → value`` with at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value for ``key``, or ``make()`` (computed outside the lock, then kept)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


def scope(auth: Any) -> tuple[str, int | None]:
    """What a cached aggregate may depend on of the user: their role and clinic (never the person)."""
    return auth.role, auth.user.clinic_id


def state_cached(cache: VersionedCache, db: Any, key: tuple[Hashable, ...], make: Callable[[], T]) -> T:
    """``make()`` cached under ``key`` at the app database's current state version."""
    return cache.get_or_make(("state", state_version(db), *key), make)

"""A small simulated network shared by the network tests: 3 sites of about 2,500 patients (article
scenario, the last site with an unmeasured confounder), each site's store and bundle.

Built once per session, also under pytest-xdist (the first worker to take the lock builds it).
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from ketaweight.network.site import run_site
from ketaweight.pipelines.network_simulation import run_network_simulation

SITES, PATIENTS, SEED = 3, 2500, 21


@pytest.fixture(scope="session")
def network(tmp_path_factory, worker_id) -> dict:
    """{'root', 'stores', 'bundles', 'truth'} of the shared network."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "network-3"
    with open(str(root) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done.json").exists():
            net = run_network_simulation("article", SITES, PATIENTS, SEED, root / "sim")
            bundles = [str(run_site(store, "ketamine-weight", spec.name, root / f"{spec.name}.zip").path)
                       for spec, store in zip(net.sites, net.stores)]
            (root / "done.json").write_text(json.dumps({"stores": [str(s) for s in net.stores], "bundles": bundles}))
    done = json.loads((root / "done.json").read_text())
    truth = json.loads((root / "sim" / "network_truth.json").read_text())["results"]
    return {"root": root, "stores": [Path(s) for s in done["stores"]], "bundles": [Path(b) for b in done["bundles"]],
            "truth": truth}

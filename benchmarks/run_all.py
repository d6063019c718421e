"""Run every benchmark in turn (``make bench``); each prints its figures beside the peer's.

Long: tens of minutes on 2 cores (the peers are slow). Record the figures in
benchmarks/RESULTS.md with the machine, date, load and n.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_simulate.py", "bench_causal.py", "bench_mediation.py", "bench_signals.py", "bench_sources.py", "bench_network.py", "bench_flexible.py")


def main() -> int:
    failed = []
    for name in SCRIPTS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

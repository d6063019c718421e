"""Scale benchmarks (issue "Past one machine").  Spark and Dask parts: benchmarks/scale_engines.py.

    .venv/bin/python benchmarks/bench_scale.py cohort [--persons 1000000]
    .venv/bin/python benchmarks/bench_scale.py replicates [--replicates 1000] [--patients 200]

The FAERS part (the whole FAERS history on one machine) is its own function of this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_engines  # noqa: E402
from machine_info import cpu_model, load_average  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    scale_engines.add_parsers(sub)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    info = {"machine": cpu_model(), "load_at_start": load_average()}
    print(json.dumps(info))
    scale_engines.run(args, info)
    info["load_at_end"] = load_average()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

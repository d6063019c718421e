"""ketaweight: does ketamine cause weight loss? Answered with data, with its uncertainty.

The package is a pipeline of small stages (see docs/architecture.md):
simulate or load records -> canonical DuckDB store -> study cohort -> estimators ->
results files -> evidence grade and report; and FAERS reports -> disproportionality.

The names below are the short way in (the README's "Python API"); each is the library function
the CLI calls.  They are imported on first use, so ``import ketaweight`` stays light.

>>> import ketaweight as kw
>>> sorted(kw.__all__)  # doctest: +NORMALIZE_WHITESPACE
['Store', '__version__', 'grade_evidence', 'load_study', 'read_result', 'run_mechanisms', 'run_study',
 'scan', 'simulate', 'write_report']
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not typing's: `import ketaweight` stays ~4 ms (typing alone costs ~12 ms)
if TYPE_CHECKING:
    from typing import Any

_FACADE = {
    "__version__": "ketaweight.core.version",  # lazy too: importlib.metadata is slow to import
    "simulate": "ketaweight.sources.simulator",  # records with a known truth
    "Store": "ketaweight.store",  # the canonical DuckDB store
    "load_study": "ketaweight.study",  # a study spec (TOML or shipped name)
    "run_study": "ketaweight.pipelines.emulation",  # target-trial emulation → kind "causal"
    "run_mechanisms": "ketaweight.pipelines.mechanisms",  # mediation, dose-response, heterogeneity
    "scan": "ketaweight.signals.scan",  # disproportionality on a count table
    "read_result": "ketaweight.core.results",  # any results file, typed
    "grade_evidence": "ketaweight.evidence",  # the graded answer
    "write_report": "ketaweight.report.render",  # the report page
}

__all__ = [*_FACADE]


def __getattr__(name: str) -> Any:
    """Import a facade name on first use (PEP 562): the CLI's start-up does not pay for it."""
    if name in _FACADE:
        value = getattr(import_module(_FACADE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ketaweight' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

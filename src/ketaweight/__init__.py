"""ketaweight: does ketamine cause weight loss? Answered with data, with its uncertainty.

The package is a pipeline of small stages (see docs/architecture.md):
simulate or load records -> canonical DuckDB store -> study cohort -> estimators ->
results JSON -> evidence grade and report; and FAERS reports -> disproportionality.
"""

from ketaweight.core.version import __version__

__all__ = ["__version__"]

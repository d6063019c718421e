"""ketaweight: does ketamine cause weight loss? Answered with data, with its uncertainty.

The package is a pipeline of small stages (see docs/architecture.md):
simulate or load records -> canonical DuckDB store -> study cohort -> estimators ->
results JSON -> evidence grade and report; and FAERS reports -> disproportionality.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ketaweight")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]

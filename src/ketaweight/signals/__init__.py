"""Signals from spontaneous reports: FAERS ingestion and disproportionality (PRR, ROR, IC, EBGM).

Modules, one job each:

* :mod:`~ketaweight.signals.faers` — ingest FAERS quarterly zips into a DuckDB store
  (:mod:`~ketaweight.signals.faers_format`, :mod:`~ketaweight.signals.faers_parse`);
* :mod:`~ketaweight.signals.mapping` — drug names → ingredients, term groups, controls;
* :mod:`~ketaweight.signals.tables`, :mod:`~ketaweight.signals.faers_counts` — counts in unique reports;
* :mod:`~ketaweight.signals.disproportionality` — PRR, ROR, IC;
* :mod:`~ketaweight.signals.mgps` — DuMouchel's gamma-Poisson shrinker (EBGM, EB05, EB95);
* :mod:`~ketaweight.signals.scan` — a scan of requested pairs plus controls, JSON and terminal output;
* :mod:`~ketaweight.signals.synthetic` — synthetic FAERS quarters and count tables with known truth.

See ``docs/signals.md`` for the statistics and references.
"""

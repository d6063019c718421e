"""Where records are born: files (CSV/Parquet folders) and the simulator.  Every source yields the
canonical tables of :mod:`ketaweight.core.schema`; the store does not care where they came from."""

"""Orchestration: the only layer that opens a store, reads a study and writes results files
(target-trial emulation, table analysis, mechanisms, responsible use, validation, the demo)."""

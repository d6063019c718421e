"""OMOP CDM 5.4 as a source and a target: read a CDM (DuckDB file, CSV folder, PostgreSQL) into the
canonical tables with its vocabulary resolved at run time, and write canonical tables as a CDM."""

from ketaweight.sources.omop.cdm import CdmConnection, open_cdm
from ketaweight.sources.omop.mapping import Mapping, load_mapping
from ketaweight.sources.omop.reader import OmopImport, read_omop
from ketaweight.sources.omop.writer import write_omop

__all__ = ["CdmConnection", "Mapping", "OmopImport", "load_mapping", "open_cdm", "read_omop", "write_omop"]

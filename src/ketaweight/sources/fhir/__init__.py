"""FHIR R4 as a source and a target: bulk-export NDJSON and Bundles read into the canonical tables
(validated with fhir.resources' R4B models), and canonical tables written as FHIR resources."""

from ketaweight.sources.fhir.reader import FhirImport, read_fhir
from ketaweight.sources.fhir.writer import write_fhir

__all__ = ["FhirImport", "read_fhir", "write_fhir"]

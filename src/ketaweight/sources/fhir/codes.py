"""FHIR code systems for the vocabularies of the concept-set mapping, and the provenance tags.

The mapping file (:mod:`ketaweight.sources.omop.mapping`) names vocabularies as OMOP does (LOINC, RxNorm,
SNOMED, MedDRA, UCUM, ATC); FHIR names them by system URI.  Codes without a standard code system live in
ketaweight's own ``urn:ketaweight:codes`` system.
"""

from __future__ import annotations

SYSTEMS: dict[str, str] = {
    "LOINC": "http://loinc.org",
    "RxNorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "SNOMED": "http://snomed.info/sct",
    "MedDRA": "http://terminology.hl7.org/CodeSystem/mdr",
    "UCUM": "http://unitsofmeasure.org",
    "ATC": "http://www.whocc.no/atc",
    "ketaweight": "urn:ketaweight:codes",
}
VOCABULARY_OF = {uri: name for name, uri in SYSTEMS.items()}

SEVERITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
"""R4 AdverseEvent.severity codes: mild | moderate | severe."""

TEST_DATA_TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                 "display": "test health data"}
"""HL7's tag for test data; every resource ketaweight writes from simulated records carries it."""

PROVENANCE_SYSTEM = "urn:ketaweight:provenance"
"""meta.tag system whose code is the data's origin (simulated, synthetic, real) and display its source."""

"""The ground floor: errors, privacy, the canonical schema, the results envelope and protocol,
attrition.  Imports nothing else from ketaweight; every other layer may import it."""

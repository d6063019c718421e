"""The evidence grade and the one-sentence answer, from results (never from a store)."""

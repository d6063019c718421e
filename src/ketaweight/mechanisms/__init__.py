"""The article's "how", "how much" and "for whom" on a plain analysis table: mediation,
dose-response and heterogeneity.  Like :mod:`ketaweight.causal`, nothing here opens a store or
writes a file."""

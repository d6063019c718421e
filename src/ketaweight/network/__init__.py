"""Network studies: the same protocol run in several databases that never share patient rows.

Each site runs the study and writes an aggregate-only bundle (:mod:`ketaweight.network.bundle`);
a coordinating centre checks that every bundle ran the same study, calibrates each estimate
with the site's negative and positive controls (:mod:`ketaweight.network.calibration`) and
pools the sites (:mod:`ketaweight.network.meta`, :mod:`ketaweight.network.bayes`).  The layer
sits above ``pipelines`` (which opens the site's store) and below ``evidence``.
"""

"""The clinic service (``ketaweight serve``): a web app on top of ``pipelines/`` and ``report/``.

Clinicians watch their own patients' monitoring alerts and trajectories and acknowledge alerts;
researchers run studies and read the graded answer, aggregates only; admins manage accounts and
uploads.  No analysis code lives here: the app calls :mod:`ketaweight.pipelines` (monitoring,
run_study, run_mechanisms, signals, patient records), :class:`ketaweight.store.Store` for loads and
:func:`ketaweight.report.render.write_report` for the answer.  Entry point:
:func:`ketaweight.app.main.create_app` (not imported here, so a job process stays light).
"""

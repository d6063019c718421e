"""The report: the article's questions answered from one run, as HTML, Markdown and JSON.

Modules: ``extract`` (read estimates out of results files), ``collect`` (find a run's
results in a folder), ``safety`` (responsible-use views from the store), ``figures``
(matplotlib → inline SVG), ``render`` (context, HTML/Markdown/JSON).  See docs/report.md.
"""

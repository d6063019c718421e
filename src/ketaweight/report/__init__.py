"""The report: the article's questions answered from one run, as HTML, Markdown and JSON.

Modules: ``collect`` (find a run's results in a folder), ``extract`` (read estimates out of
results files), ``blocks`` (labels, tables, CI text, masked counts), ``figures`` (matplotlib
→ accessible inline SVG), the sections (``sections``: answer, mechanism of action,
therapeutic context, the link, limitations; ``mechanisms_sections``; ``signals_section``;
``safety``: responsible-use views from the store and their section; ``faq``), and
``render`` (assemble, write).  See docs/report.md.
"""

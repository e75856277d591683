"""``python -m bench``: measure what Drawbridge's users feel, in one run, as one table.

Every benchmark drives the real app (``chalice.test.Client`` over ``app.py``)
against moto and the local Slack stand-in, measures side by side in the same
run, and reports ratios where absolute times drift (a shared 2-core machine).
``--smoke`` runs every benchmark at tiny sizes in seconds (the CI smoke test).
See docs/PERFORMANCE.md for what each row means and the figures of record.

Nothing is imported here: ``python bench/_first_request.py`` and the cold-start
subprocesses must not pay for the benchmarks' own imports.
"""

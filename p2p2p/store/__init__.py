"""The store: the one enforcement boundary between untrusted SQL and a DuckDB file.

Everything that reads a store, whoever asks (a viewer through a link, a dashboard's
kernel, an analyst's ``local:`` cell, the CLI), goes through ``executor.Executor``. What
enforces what:

* ``executor``: the front door. A pool of worker processes per store, the per-query
  limits (time, rows, bytes), cancellation, and results streamed as Arrow batches.
* ``worker``: the sandboxed process that holds the store's only DuckDB handle; it runs
  every statement past ``policy`` before DuckDB sees it.
* ``policy``: the rules. Which statements, relations and table functions an untrusted
  caller may use; a refusal names its rule.
* ``lockdown``: the DuckDB settings a store is opened with (read-only, no files, no
  network, no extensions, configuration locked) and the check that they took.
* ``sandbox``: OS confinement of the worker (rlimits, Landlock, no network).
* ``limits``: what one query and one worker may use. ``file``: is this a DuckDB file.
* ``pipe``: the executor ↔ worker framing. ``arrow``: Arrow IPC pieces and pandas.

Pure: nothing here imports Jupyter, tornado, websockets or httpx. (Nothing is imported
here either: the worker process starts as ``python -m p2p2p.store.worker`` and should
load only what it runs.)
"""

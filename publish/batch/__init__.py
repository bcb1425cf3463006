"""``tensorferry batch ORG``: plan, convert, verify and open one PR per repo of an organisation, resumably.

Modules, each importing only what it needs (the CLI imports them when the command runs):
``plan`` (what each repo needs, read from the Hub), ``journal`` (the SQLite WAL state of every repo),
``work`` (one repo's pipeline, in a worker process or on a Dask worker), ``pool`` (local processes or
Dask, within a memory budget), ``run`` (the coordinator), ``report`` (Markdown, JSON, CSV), ``cli``.
"""

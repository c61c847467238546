"""Corpus runs: where passages come from (``sources``: WikiText-2, prompt tables, unigram counts), the run
store (``store``: manifest, shards, lock), a passage traced (``passages``), a run read back (``runs``:
``CorpusRun``, ``load_runs``), and the runner with its Ray backend (``runner``, ``ray_backend``).

May import: ``tracing``, ``result``, ``views`` (a run's dashboard), ``analysis``, ``method``, ``models``,
``config``, ``errors``, ``files``. Inside: ``store`` < ``passages``, ``runs`` < ``ray_backend`` < ``runner``.
"""

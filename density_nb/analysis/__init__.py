"""Numbers about many results or runs: means and bands over a common size grid and composition
(``aggregate``), per-passage numbers from a run's tables (``curves``), token frequency (``frequency``),
and the statistics (``stats``: rank correlations, paired tests, bootstrap CIs).

May import: ``method.measures`` (numpy only), ``errors``. Never torch (summarising saved results needs none).
"""

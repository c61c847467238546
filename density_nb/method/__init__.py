"""One trace, step by step (no corpus, no views): the family view of a model's weights (``arch``), the
packed GEMMs (``linear``), a text and its roots checked and tokenized (``inputs``), edge weights
(``importance``), best-first strata (``stratify``), masked passes (``ablation``), distribution metrics
(``metrics``, torch) and the numbers read off a curve (``measures``, numpy only), the steps joined for
many roots (``pipeline``), one stratum as a graph (``subgraphs``) and the float64 oracle (``reference``).

May import: ``models``, ``config``, ``errors``, ``files`` (and ``examples``). Never ``result`` or anything
above it: a trace returns plain fields, which ``tracing`` turns into a ``DensityResult``.
"""

"""The tutorials: the corpus runs behind the findings and the shipped results (``runs``), each notebook's
header (``notebook``), the teaching corpus (``texts``: our own passages) and its live runs (``live``), the
verdict rules (``verdicts``), and ``tutorial``, the notebooks' one import (thin wrappers over ``analysis``).

May import every wing below it (``corpus``, ``generation``, ``tracing``, ``result``, ``views``, ``analysis``,
``method``, ``models``, ...); nothing imports it but the notebooks and scripts.
"""

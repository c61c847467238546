"""docs/method.md's measure card is what scripts/measure_card.py computes from the shipped results (no
number typed in), and every measure a result's summary reports has a row."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import measure_card

from density_nb.teaching.runs import results_dir


def test_the_card_in_method_md_is_the_scripts():
    assert measure_card.written() == measure_card.card(), (
        "docs/method.md's measure card is stale: run python scripts/measure_card.py --write"
    )


def test_every_measure_of_the_shipped_run_is_on_the_card():
    columns = set(pd.read_parquet(results_dir() / "smollm2.summary.parquet").columns)
    for measure in measure_card.MEASURES:
        assert measure in columns, f"{measure} is on the card but not in results/smollm2"
    reported = {"density", "auc_kl", "tv_post_input", "tv_mid", "tv_post_input_over_empty", "tv_empty", "s_input", "s_top1", "s_top1_exact",
                "s_tv10", "s_tv50"}  # fmt: skip
    assert reported <= set(measure_card.MEASURES)

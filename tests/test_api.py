"""The public API has no traps: names, model loading by name, early input checks, selecting by
position, token pieces, and errors that name the problem."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import density_nb
from density_nb import DensityNBError, DensityResult, TraceConfig, TraceInputError, models, trace
from density_nb.method.inputs import tokenize
from helpers import TEXT


def test_every_public_name_wins_over_submodules():
    """Importing every submodule first (as a notebook might) never shadows a public function."""
    names = sorted(m.name for m in pkgutil.walk_packages(density_nb.__path__, "density_nb."))
    code = (
        "import importlib, density_nb\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "from density_nb import trace, trace_many, load_model, run_corpus\n"
        "import density_nb.tracing, density_nb.corpus.runner, density_nb.models\n"
        "assert trace is density_nb.tracing.trace and density_nb.trace is trace and callable(trace)\n"
        "assert trace_many is density_nb.tracing.trace_many and run_corpus is density_nb.corpus.runner.run_corpus\n"
        "for name in density_nb.__all__:\n"
        "    value = getattr(density_nb, name)\n"
        "    assert value is getattr(importlib.import_module(density_nb._LAZY[name]), name), name\n"
        "    assert not isinstance(value, type(density_nb)), f'{name} is a module'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_model_name_is_loaded_once(monkeypatch):
    calls = []
    real = models.load_hf
    monkeypatch.setattr(models, "load_hf", lambda spec: calls.append(spec) or real(spec))
    models.release_models()
    a = trace("tiny-llama", TEXT, roots="last", progress=False)
    b = trace("tiny-llama", TEXT, roots="last", progress=False)
    assert calls == ["tiny-llama"] and a.equals(b)
    models.release_models()
    trace("tiny-llama", TEXT, roots="last", progress=False)
    assert calls == ["tiny-llama", "tiny-llama"]
    models.release_models()


@pytest.mark.parametrize(
    ("text", "roots", "settings", "match"),
    [
        ("", "all", {}, "empty"),
        ("   \n", "all", {}, "empty"),
        (b"bytes", "all", {}, "string"),
        (TEXT, "first", {}, "roots"),
        (TEXT, [], {}, "roots is empty"),
        (TEXT, [1.5], {}, "integers"),
        (TEXT, "all", {"grid": "medium"}, "grid"),
        (TEXT, "all", {"grid": [0.0, 2]}, r"\(0, 1\]"),
        (TEXT, "all", {"norms": "off"}, "norms"),
        (TEXT, "all", {"weighting": "l2"}, "weighting"),
        (TEXT, "all", {"max_tokens": 0}, "max_tokens"),
        (TEXT, "all", {"colour": "red"}, "Unknown trace setting"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(monkeypatch, text, roots, settings, match):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("density_nb.method.pipeline.cached_model", no_model)
    monkeypatch.setattr("density_nb.method.pipeline.load_model", no_model)
    with pytest.raises(TraceInputError, match=match):
        trace("smollm2-135m", text, roots, progress=False, **settings)


def test_select_by_position(tiny_llama):
    result = trace(tiny_llama, TEXT, roots=[3, 10], progress=False)
    at = result.at(10)
    assert at.position == 10 and at.token_text == result.tokens[10]
    np.testing.assert_array_equal(at.tv, result.tv[1])
    assert at.density == result.density[1] and at.entropy_full == result.entropy_full[1]
    assert result.index(3) == 0 and result.at(3 - len(result.tokens)).position == 3
    with pytest.raises(KeyError, match=r"Position 4 was not traced; traced positions: 3, 10"):
        result.at(4)
    with pytest.raises(IndexError, match="token position"):
        result.at(len(result.tokens))


def test_one_name_per_concept(tiny_llama):
    result = trace(tiny_llama, TEXT, roots="all", progress=False)
    s = result.summary()
    assert "entropy" not in s and "loss" not in s and "top_prediction" not in s
    np.testing.assert_array_equal(s["entropy_full"], result.entropy_full)
    np.testing.assert_array_equal(s["loss_full"], result.loss_full)
    np.testing.assert_array_equal(s["next_token"], result.next_token)
    np.testing.assert_array_equal(s["top_token_full"], result.top_token_full)
    assert s["top_text_full"].tolist() == result.top_text_full
    assert s["position"].tolist() == result.roots.tolist()


@pytest.mark.parametrize("text", ["北京 is far", "Smile 🙂🙂 now", "cafe\u0301 and café", "naïve façade 東京タワー"])
def test_each_character_is_shown_once(tiny_llama, text):
    """A character split over several byte-level tokens is shown by its first token only."""
    ids, pieces = tokenize(tiny_llama, text)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == text
    assert len(ids) > len(text.split()), "the tiny tokenizer must split these characters"


@pytest.mark.real
def test_each_character_is_shown_once_on_smollm2(smollm2):
    text = "北京 and 🙂 with café"
    _ids, pieces = tokenize(smollm2, text)
    assert "".join(pieces) == text
    assert pieces.count("") > 0, "SmolLM2 splits CJK and emoji over several tokens"
    result = trace(smollm2, text, roots="last", progress=False)
    assert result.tokens == pieces and "".join(result.tokens) == text


def test_config_is_frozen_and_records_its_settings():
    config = TraceConfig(grid=[0.5, 1e-3])
    assert config.grid == (1e-3, 0.5) and config.sizes.tolist() == [1e-3, 0.5, 1.0]
    with pytest.raises(AttributeError):
        config.norms = "frozen"  # type: ignore[misc]
    assert json.loads(json.dumps(config.settings()))["grid"] == [1e-3, 0.5]
    assert config.replace(norms="frozen").norms == "frozen" and config.norms == "live"
    recorded = json.loads(json.dumps({**config.replace(baselines=["random"]).settings(), "model": "m"}))
    assert TraceConfig.from_settings(recorded) == config.replace(baselines=["random"])  # the JSON round trip; "model" skipped


def test_errors_share_one_base_class():
    from density_nb import CorpusError, DataError, ModelError, ResultFileError

    for error in (CorpusError, DataError, ModelError, ResultFileError, TraceInputError):
        assert issubclass(error, DensityNBError)


def test_non_utf8_prompt_file_names_the_file(tmp_path):
    from density_nb import DataError, read_prompts

    path = tmp_path / "prompts.csv"
    path.write_bytes("prompt,next_word\nLe caf\xe9 est,ouvert\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"prompts\.csv.*not UTF-8.*Save it as UTF-8"):
        read_prompts(path)


def test_corrupt_result_file_names_the_file(tmp_path):
    from density_nb import ResultFileError

    path = tmp_path / "result.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(ResultFileError, match=r"result\.parquet.*not a readable parquet file"):
        DensityResult.from_parquet(path)
    with pytest.raises(ResultFileError, match="does not exist"):
        DensityResult.from_parquet(tmp_path / "missing.parquet")


def test_a_schema_1_result_file_still_loads(tmp_path):
    """Files written before the names were settled (schema 1) load with today's names."""
    import pyarrow.parquet as pq

    from helpers import make_result

    result = make_result(n_tokens=12, seed=3)
    path = result.to_parquet(tmp_path / "new.parquet")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"density_nb"])
    meta["schema_version"] = 1
    meta["top_tokens"] = meta.pop("top_text_full")
    old = tmp_path / "old.parquet"
    pq.write_table(table.replace_schema_metadata({b"density_nb": json.dumps(meta).encode()}), old)
    assert DensityResult.from_parquet(old).equals(result)
    meta["schema_version"] = 99
    pq.write_table(table.replace_schema_metadata({b"density_nb": json.dumps(meta).encode()}), old)
    with pytest.raises(DensityNBError, match=r"schema version 99.*Upgrade density_nb"):
        DensityResult.from_parquet(old)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py")), ids=lambda p: p.stem)
def test_benchmarks_import_against_todays_api(path, monkeypatch):
    """Benchmarks are not run in CI, but they must keep importing what the package offers."""
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # as an import would (dataclasses look their module up there)
    spec.loader.exec_module(module)


@pytest.mark.parametrize(
    "statement",
    [
        "from density_nb import TraceInputError, DensityNBError, DataError, CorpusError",
        "from density_nb import DensityResult, load_runs, compare; from density_nb.analysis import aggregate, curves, stats",
    ],
)
def test_errors_results_and_views_import_no_torch(statement):
    """Catching density_nb's errors, reading a saved result or run and viewing it never loads torch."""
    code = f"import sys\n{statement}\nassert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_readme_lists_every_module():
    """The README's module table is the map of the package: a module missing from it fails here."""
    root = Path(__file__).resolve().parents[1]
    package = root / "density_nb"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent == package}
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## How it works") : readme.index("## Tests and benchmarks")]
    listed = {line.split("|")[2].strip().strip("`") for line in section.splitlines() if line.startswith("|")}
    assert modules - listed == set(), f"modules missing from the README's table: {sorted(modules - listed)}"
    assert listed - modules - {"module", "---", ""} == set(), (
        f"the README lists modules that do not exist: {sorted(listed - modules - {'module', '---', ''})}"
    )

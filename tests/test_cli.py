"""The ``density-nb`` command, run as ``python -m density_nb.cli`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from density_nb.cli import main
from density_nb.corpus.runs import load_runs
from density_nb.result import DensityResult

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "density_nb.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def run_main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same command in this process (cheaper than a subprocess), as a CompletedProcess."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code, captured.out, captured.err)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("density-nb") or "usage:" in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_help_subprocess():
    proc = cli("--help")
    assert proc.returncode == 0 and "usage: density-nb" in proc.stdout
    for command in ("trace", "corpus", "models", "lab"):
        assert command in proc.stdout


@pytest.mark.parametrize("command", ["trace", "corpus", "models", "lab"])
def test_help(command, capsys):
    proc = run_main(capsys, command, "--help")
    assert proc.returncode == 0 and f"usage: density-nb {command}" in proc.stdout


def test_trace_tiny(tmp_path):
    out = tmp_path / "r.parquet"
    proc = cli("trace", "The cat sat on the mat and the dog", "--model", "tiny-llama", "--roots", "0,3,5", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tiny-llama:") and "3 traced" in lines[0]
    header = lines[1].split()
    for col in ("position", "token", "density", "s_top1", "entropy", "top"):
        assert col in header
    assert [line.split()[0] for line in lines[2:5]] == ["0", "3", "5"]
    result = DensityResult.from_parquet(out)
    assert result.roots.tolist() == [0, 3, 5] and result.model == "tiny-llama"


def test_trace_html(tmp_path, capsys):
    out = tmp_path / "r.html"
    proc = run_main(capsys, "trace", "The cat sat", "--model", "tiny-llama", "--roots", "last", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_models():
    proc = cli("models")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"smollm2-135m", "gemma3-270m", "tiny-llama", "tiny-gemma3"} <= set(names)
    assert "cache:" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["trace", "abc", "--model", "no-such-model"], ["Unknown model 'no-such-model'"]),
        (["trace", "abc def", "--model", "tiny-llama", "--grid", "2"], ["Grid sizes must lie in (0, 1]"]),
        (["corpus", "--out", "x", "--data", "/no/such/folder"], ["does not exist", "DENSITY_NB_DATA"]),
    ],
)
def test_bad_input_subprocess(args, fragments):
    assert_clean_error(cli(*args), *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["trace", "", "--model", "tiny-llama"], ["empty"]),
        (["trace", "abc def", "--model", "tiny-llama", "--roots", "99", "--quiet"], ["outside the text"]),
        (["trace", "abc def", "--roots", "x"], ["roots must be"]),
        (["trace", "abc def", "--out", "r.txt"], ["--out must end in .parquet or .html"]),
        (["models", "--prepare", "tiny-llama"], ["not a packaged model"]),
        (["corpus", "--out", "x", "--backend", "spark"], ["invalid choice"]),
        (["corpus", "--out", "x", "--passages", "0"], ["positive integer"]),
    ],
)
def test_bad_input(args, fragments, capsys):
    assert_clean_error(run_main(capsys, *args), *fragments)


def test_corpus_and_resume(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "wikitext-2").mkdir(parents=True)
    (data / "wikitext-2" / "test.txt").write_text(
        " = T = \n The small boat drifted past the old mill , and the miller waved . \n"
        " Rain fell on the city for three days , and the river rose slowly . \n"
    )
    out = tmp_path / "run"
    base = ["corpus", "--data", str(data), "--words", "6", "--model", "tiny-llama", "--grid", "fast", "--out", str(out), "--quiet"]
    proc = cli(*base, "--passages", "1")
    assert proc.returncode == 0, proc.stderr
    assert "1 passages" in proc.stdout
    assert_clean_error(run_main(capsys, *base, "--passages", "2"), "--resume")
    proc = run_main(capsys, *base, "--passages", "2", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert len(load_runs(out).summary) == 2
    assert_clean_error(run_main(capsys, *[a if a != "6" else "5" for a in base], "--resume"), "words: recorded 6, now 5")


def test_lab_passes_its_arguments_on(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("density_nb.cli.subprocess.call", lambda cmd: calls.append(cmd) or 0)
    for args in (["lab", "--no-browser", "--port", "8899"], ["lab", "--", "--no-browser", "--port", "8899"]):
        proc = run_main(capsys, *args)
        assert proc.returncode == 0, proc.stderr
        assert calls[-1][1:3] == ["-m", "jupyterlab"] and calls[-1][-3:] == ["--no-browser", "--port", "8899"]
        assert calls[-1][3].endswith("notebooks/00_quickstart.ipynb")  # it opens there: the notebook ends with the playground
    assert_clean_error(run_main(capsys, "models", "--no-browser"), "unrecognized arguments: --no-browser")


def test_an_internal_bug_shows_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an internal bug, not a usage error")

    monkeypatch.setattr("density_nb.tracing.trace", broken)
    with pytest.raises(ValueError, match="internal bug"):
        main(["trace", "abc def", "--model", "tiny-llama", "--quiet"])


def test_resume_of_a_run_from_other_versions(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "wikitext-2").mkdir(parents=True)
    (data / "wikitext-2" / "test.txt").write_text(" The small boat drifted past the old mill , and the miller waved . \n")
    out = tmp_path / "run"
    base = ["corpus", "--data", str(data), "--words", "6", "--model", "tiny-llama", "--grid", "fast", "--out", str(out), "--quiet"]
    assert run_main(capsys, *base, "--passages", "1").returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["versions"]) == {"density_nb", "torch", "transformers"}
    manifest["versions"]["torch"] = "1.0.0"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(run_main(capsys, *base, "--resume"), "torch: recorded 1.0.0", "--force")
    with pytest.warns(UserWarning, match="other versions"):
        assert run_main(capsys, *base, "--resume", "--force").returncode == 0


def test_export_tables_and_subgraphs(tmp_path, capsys):
    import pandas as pd

    result_file = tmp_path / "r.parquet"
    assert (
        run_main(
            capsys, "trace", "The cat sat on the mat", "--model", "tiny-llama", "--roots", "2,4", "--quiet", "--out", str(result_file)
        ).returncode
        == 0
    )
    proc = run_main(capsys, "export", str(result_file), "--out", str(tmp_path / "t"), "--subgraph", "4:5")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "t" / "summary.csv")
    result = DensityResult.from_parquet(result_file)
    assert summary["position"].tolist() == [2, 4] and summary["density"].to_numpy() == pytest.approx(result.density)
    curves = pd.read_csv(tmp_path / "t" / "curves.csv")
    assert len(curves) == 2 * len(result.grid)
    graph = json.loads((tmp_path / "t" / "subgraph-4-5.json").read_text())
    assert graph["n_edges"] == result.n_edges[1, 5] == len(graph["edges"])
    assert (tmp_path / "t" / "subgraph-4-5.graphml").read_text().startswith("<?xml")
    assert run_main(capsys, "export", str(result_file), "--out", str(tmp_path / "p"), "--format", "parquet").returncode == 0
    assert pd.read_parquet(tmp_path / "p" / "curves.parquet")["tv"].to_numpy() == pytest.approx(result.tv.ravel())
    assert_clean_error(run_main(capsys, "export", str(tmp_path), "--out", str(tmp_path / "x")), "without manifest.json")
    assert_clean_error(run_main(capsys, "export", str(result_file), "--out", str(tmp_path / "x"), "--subgraph", "4"), "POSITION:STRATUM")


def test_export_a_corpus_run(tmp_path, capsys):
    import pandas as pd

    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    (data / "test.txt").write_text(" The small boat drifted past the old mill , and the miller waved . \n")
    run = tmp_path / "run"
    args = [
        "corpus",
        "--data",
        str(tmp_path / "data"),
        "--words",
        "6",
        "--model",
        "tiny-llama",
        "--grid",
        "fast",
        "--out",
        str(run),
        "--quiet",
    ]
    assert run_main(capsys, *args, "--passages", "1").returncode == 0
    assert run_main(capsys, "export", str(run), "--out", str(tmp_path / "t")).returncode == 0
    curves = pd.read_csv(tmp_path / "t" / "curves.csv")
    assert json.loads(curves["layer_edges"].iloc[0]) and json.loads(curves["topk_token"].iloc[0])

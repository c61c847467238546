"""The package works installed from its wheel, away from the checkout: the shipped results are package
data, so a class-mode notebook cell that reads them runs in a fresh environment."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CELL = """
import density_nb, pathlib
from density_nb.teaching import tutorial as tut
assert "site-packages" in density_nb.__file__ and {checkout!r} not in density_nb.__file__, density_nb.__file__
data = tut.corpus("smollm2")
print("OK", data.n, round(float(data.summary.density.median()), 6), tut.results_dir().relative_to(pathlib.Path(density_nb.__file__).parent))
"""


@pytest.mark.slow
def test_a_class_mode_cell_reads_the_shipped_results_from_an_installed_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                   check=True, cwd=tmp_path)  # fmt: skip
    wheel = next(wheels.glob("density_nb-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # the dependencies (torch, pandas, ...) from this environment, as a plain path: no .pth of it runs, so the
    # checkout's editable install stays out and `density_nb` is the wheel's copy
    fresh_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    Path(fresh_site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DENSITY_NB_", "PYTHONPATH"))} | {"DENSITY_NB_MODE": "class"}
    out = subprocess.run([str(python), "-c", CELL.format(checkout=str(ROOT))], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    ok = out.stdout.strip().splitlines()[-1].split()
    assert ok[0] == "OK" and int(ok[1]) == 200 and ok[3] == "results"

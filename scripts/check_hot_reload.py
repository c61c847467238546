"""Check anywidget's hot reload of the views (``ANYWIDGET_HMR=1``): on a copy of the package, save each file a
view sends (its ESM ``density.js``, ``common.js``, ``theme.json``, the CSS) and see its new text arrive in the
widget's trait, the value the front end receives. Needs watchfiles (``pip install watchfiles``; not a dependency).

    python scripts/check_hot_reload.py      # prints one line per file; exit 1 if one did not reload
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, queue, sys
import density_nb.views as views
from density_nb.views.assets import STATIC, compact_json, hot_reload

assert hot_reload(), "hot reload is off: ANYWIDGET_HMR=1 and watchfiles are needed"
widget = views.LiveTrace("m", ["a", " b"], total=1, unit="steps")
seen = queue.Queue()
widget.observe(lambda change: seen.put((change["name"], change["new"])), names=["_esm", "_css", "_common", "_theme"])
for name, trait in (("density.js", "_esm"), ("common.js", "_common"), ("theme.json", "_theme"), ("density.css", "_css")):
    path = STATIC / name
    text = path.read_text(encoding="utf-8").replace('"digits": 3', '"digits": 4') if name.endswith("json") else path.read_text(encoding="utf-8") + "\n/* edited */\n"
    path.write_text(text, encoding="utf-8")
    try:
        got = seen.get(timeout=60)
    except queue.Empty:
        print(f"{name}: NOT reloaded into {trait}")
        sys.exit(1)
    ok = got[0] == trait and (got[1] == text or (trait == "_theme" and json.loads(got[1]) == json.loads(compact_json(text))))
    print(f"{name}: saved, {got[0]} re-sent {'with the new text' if ok else 'with OTHER text'} ({len(got[1])} characters)")
    if not ok:
        sys.exit(1)
"""


def main() -> int:
    package = Path(__file__).resolve().parents[1] / "density_nb"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(package, Path(tmp) / "density_nb", ignore=shutil.ignore_patterns("results", "__pycache__"))
        env = {**os.environ, "ANYWIDGET_HMR": "1", "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main())

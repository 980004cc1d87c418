"""nbval checks the numbers the README quotes: a tampered number in notebook 05's knee table (the
source of the headline knee numbers) or in notebook 04's Fig. 4 grid table makes ``pytest --nbval``
fail, in copies of the notebooks (cut after the tampered cell, so each copy runs in seconds from the
committed cache). The untampered copy passes, so the failure is the tampering's."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "nbval_sanitize.cfg"

pytestmark = pytest.mark.notebooks  # 04 and 05 draw from the committed cache alone: no data needed


def _table_cell(nb, marker):
    """Index of the code cell whose source contains ``marker`` and whose output is a table."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and marker in "".join(cell["source"]) and any(
                "text/html" in o.get("data", {}) for o in cell.get("outputs", [])):
            return i
    raise AssertionError(f"no table cell with {marker!r}")


def _tamper(cell, number, replacement):
    """Replace ``number`` (a whole number in the table's text and HTML) in the cell's outputs."""
    hits = 0
    for output in cell["outputs"]:
        for mime in ("text/plain", "text/html"):
            if mime in output.get("data", {}):
                text = "".join(output["data"][mime])
                new, n = re.subn(rf"(?<![\d.]){re.escape(number)}(?![\d])", replacement, text)
                output["data"][mime], hits = new, hits + n
    assert hits >= 2, f"{number} is not in the stored table"


def _nbval(path, tmp_path):
    env = dict(os.environ, MOPRUNE_OUTPUT_DIR=str(tmp_path / "outputs"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-sanitize-with", str(SANITIZE), str(path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("notebook, marker, number, replacement", [
    ("05_knee_search.ipynb", "knee_seeds_table = ", "3634.0", "9999.0"),  # the separate bisection knee's nnz
    ("04_pareto_front.ipynb", "grid = experiments.grid_table(", None, None),
])
def test_a_tampered_table_fails_nbval(notebook, marker, number, replacement, tmp_path):
    nb = json.loads((NOTEBOOKS / notebook).read_text())
    index = _table_cell(nb, marker)
    nb["cells"] = nb["cells"][:index + 1]  # nothing after the table has to run
    if number is None:  # the grid: the first row's nonzero count, whatever it is
        html = "".join(next(o for o in nb["cells"][index]["outputs"] if "text/html" in o.get("data", {}))
                       ["data"]["text/html"])
        number = re.findall(r"<td>(\d{4,})</td>", html)[0]
        replacement = str(int(number) + 1)
    copy = tmp_path / notebook
    copy.write_text(json.dumps(nb))
    done = _nbval(copy, tmp_path)
    assert done.returncode == 0, f"the untampered copy fails nbval:\n{done.stdout[-3000:]}"
    _tamper(nb["cells"][index], number, replacement)
    copy.write_text(json.dumps(nb))
    done = _nbval(copy, tmp_path)
    assert done.returncode != 0 and "1 failed" in done.stdout, done.stdout[-3000:]
    assert replacement in done.stdout  # the report shows the stored (tampered) value

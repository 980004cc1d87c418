"""Every notebook executes end to end with papermill on tiny parameters.

Outputs go to a temporary project root (MOPRUNE_ROOT), so the committed figures/ and
results/ are never overwritten by tiny runs. nbval (``pytest --nbval``) separately checks
the stored outputs of the deterministic cells on the default parameters.
"""

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Parameters small enough for CI; every notebook must be listed here.
TINY_PARAMETERS = {
    "01_biobjective_problem.ipynb": {"seed": 1},
    "02_data_and_models.ipynb": {"datasets": ["mnist", "cifar10"], "per_class": 2, "cnn_width": 0.25},
}


def test_every_notebook_has_tiny_parameters_and_a_parameters_cell():
    found = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found == sorted(TINY_PARAMETERS), "add the new notebook to TINY_PARAMETERS"
    for name in found:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), name


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(TINY_PARAMETERS))
def test_notebook_runs_on_tiny_parameters(name, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=TINY_PARAMETERS[name],
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert list((tmp_path / "figures").rglob("*.png")), "the notebook saved no figure"

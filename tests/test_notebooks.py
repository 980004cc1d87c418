"""Every notebook executes end to end with papermill on tiny parameters.

Outputs go to a temporary project root (MOPRUNE_ROOT, with MOPRUNE_OUTPUT_DIR beside it), so
the committed figures/ and results/ are never overwritten by tiny runs. nbval (``pytest --nbval``) separately checks
the stored outputs of the deterministic cells on the default parameters.
"""

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Parameters small enough for CI, from each notebook's manifest entry (helpers.notebooks.manifest): its
# tiny parameters, and its second tiny runs ("<notebook>.ipynb#<name>", e.g. a second dataset).
from helpers.notebooks.manifest import NOTEBOOKS as MANIFEST  # noqa: E402

TINY_PARAMETERS = {f"{stem}.ipynb": entry.tiny for stem, entry in MANIFEST.items()}
EXTRA_TINY_RUNS = {f"{stem}.ipynb#{name}": parameters for stem, entry in MANIFEST.items()
                   for name, parameters in entry.tiny_variants.items()}


# Datasets each tiny run loads, derived from its parameters (helpers.notebooks.parameters.notebook_datasets);
# a run whose data cannot be loaded offline is skipped with one reason.
from helpers.notebooks.parameters import notebook_datasets  # noqa: E402

NEEDS_DATA = {run: datasets for run, parameters in {**TINY_PARAMETERS, **EXTRA_TINY_RUNS}.items()
              if (datasets := notebook_datasets(run, parameters))}


def test_every_notebook_has_tiny_parameters_and_a_parameters_cell():
    found = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found == sorted(TINY_PARAMETERS), "add the new notebook to helpers/notebooks/manifest.py"
    # every notebook says which data it loads (notebook_datasets raises for one that does not): 01 and 09 none
    assert {"01_biobjective_problem.ipynb", "09_benchmarks.ipynb"} <= set(TINY_PARAMETERS) - set(NEEDS_DATA)
    assert NEEDS_DATA["04_pareto_front.ipynb#joint"] == ("mnist",)
    assert NEEDS_DATA["08_budget_constrained_pruning.ipynb#vgg"] == ("cifar10",)
    for name in found:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), name


@pytest.mark.notebooks
@pytest.mark.parametrize("run", sorted(TINY_PARAMETERS) + sorted(EXTRA_TINY_RUNS))
def test_notebook_runs_on_tiny_parameters(run, tmp_path, monkeypatch, require_data):
    papermill = pytest.importorskip("papermill")
    if run in NEEDS_DATA:
        require_data(*NEEDS_DATA[run])
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    monkeypatch.setenv("MOPRUNE_OUTPUT_DIR", str(tmp_path))
    name = run.split("#")[0]
    parameters = {**TINY_PARAMETERS, **EXTRA_TINY_RUNS}[run]
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters,
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert list((tmp_path / "figures").rglob("*.png")), "the notebook saved no figure"
    # a run on non-default parameters writes under variants/, never into the canonical folders
    from helpers.notebooks import output_folders

    stem = name.removesuffix(".ipynb")
    if not output_folders.for_notebook(stem, {**output_folders.parameter_defaults(stem), **parameters}, verbose=False).canonical:
        canonical = [p for p in (tmp_path / "figures" / stem).glob("*") if p.is_file()]
        assert not canonical, f"a non-default run wrote canonical figures: {canonical[:3]}"
        assert list((tmp_path / "figures" / stem / "variants").rglob("*.png"))


def _cells(name):
    return json.loads((NOTEBOOKS / name).read_text())["cells"]


def _tagged(cells, tag):
    return next((c for c in cells if tag in c.get("metadata", {}).get("tags", [])), None)


CHECKED = [name for name in sorted(TINY_PARAMETERS) if _tagged(_cells(name), "check-parameters")]


@pytest.mark.parametrize("name", CHECKED)
def test_parameters_are_checked_before_any_work(name, tmp_path, monkeypatch):
    """The check-parameters cell (right after the parameters cell) accepts the defaults and the
    tiny parameters, and rejects a papermill string where a list or number is expected."""
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    cells = _cells(name)
    params, check = _tagged(cells, "parameters"), _tagged(cells, "check-parameters")
    assert cells.index(check) == cells.index(params) + 1
    defaults = {}
    exec("".join(params["source"]), defaults)
    for extra in ({}, TINY_PARAMETERS[name]):
        exec("".join(check["source"]), {**defaults, **extra})
    for parameter, value in defaults.items():
        if parameter.startswith("__") or isinstance(value, (str, bool)) or value is None:
            continue
        bad = dict(defaults, **{parameter: str(value)})  # what `papermill -p name value` gives for a list
        with pytest.raises((TypeError, ValueError), match=parameter):
            exec("".join(check["source"]), bad)
        break


@pytest.mark.notebooks
def test_an_unknown_papermill_parameter_stops_the_notebook(tmp_path, monkeypatch):
    """``-p sed 1`` is not run on the defaults: the check cell names the closest parameter."""
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    monkeypatch.setenv("MOPRUNE_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(papermill.PapermillExecutionError, match="did you mean 'seed'"):
        papermill.execute_notebook(str(NOTEBOOKS / "01_biobjective_problem.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"sed": 1}, cwd=str(NOTEBOOKS), progress_bar=False,
                                   kernel_name="python3")
    assert not list((tmp_path / "figures").rglob("*.png"))  # stopped before any work


@pytest.mark.notebooks
def test_nbval_skips_what_needs_missing_data_with_one_reason(tmp_path):
    """Without data (``PRUNING_DATA_DIR`` empty, no download), nbval skips the cell that stops with
    DataUnavailableError and the rest of its notebook, with the one NO_DATA reason; cells before it
    are still compared, and nothing fails (notebooks/conftest.py)."""
    import shutil
    import subprocess
    import sys

    import nbformat

    from helpers.data import NO_DATA

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [("print('before')", "before\n"), ("from helpers.data import load_dataset\nload_dataset('mnist')", None),
             ("print('after')", "after\n")]
    for count, (source, text) in enumerate(cells, 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=count)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text or "x\n")]
        nb.cells.append(cell)
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(nb, folder / "02_data_and_models.ipynb")  # a notebook that needs data on its defaults
    shutil.copy(NOTEBOOKS / "conftest.py", folder / "conftest.py")
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = dict(os.environ, PRUNING_DATA_DIR=str(empty), MOPRUNE_OUTPUT_DIR=str(tmp_path / "out"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval", "-rs", str(folder)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "1 passed, 2 skipped" in done.stdout, done.stdout[-3000:]
    assert done.stdout.count(NO_DATA) == 2 and "failed" not in done.stdout


def test_canonical_variants_run_from_the_manifest_into_their_records(monkeypatch):
    """``python -m helpers.notebooks variants`` (``make figures``) executes each manifest variant into
    its committed record, with the parameters that record's injected cell holds, in that order."""
    import ast

    from helpers.notebooks import execution, output_folders

    calls = []
    monkeypatch.setattr(execution, "execute", lambda notebook, output, parameters: calls.append(
        (Path(notebook), Path(output), parameters)))
    assert execution.main(["variants"]) == 0
    expected = [(stem, variant) for stem, entry in MANIFEST.items() for variant in entry.variants]
    assert [stem for stem, _ in expected] == ["03_smgd", "05_knee_search"]
    for (notebook, output, parameters), (stem, variant) in zip(calls, expected, strict=True):
        assert notebook == NOTEBOOKS / f"{stem}.ipynb" and output == NOTEBOOKS.parent / variant.output
        injected = next(c for c in json.loads(output.read_text())["cells"]
                        if "injected-parameters" in c["metadata"].get("tags", []))
        body = ast.parse("".join(injected["source"])).body
        assert [(n.targets[0].id, ast.literal_eval(n.value)) for n in body] == list(parameters.items())
        assert output_folders.for_notebook(stem, {**output_folders.parameter_defaults(stem), **parameters},
                                           verbose=False).canonical

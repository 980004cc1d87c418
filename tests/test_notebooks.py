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

# Parameters small enough for CI; every notebook must be listed here.
TINY_PARAMETERS = {
    "01_biobjective_problem.ipynb": {"seed": 1},
    "02_data_and_models.ipynb": {"datasets": ["mnist", "cifar10"], "per_class": 2, "cnn_width": 0.25},
    "03_smgd.ipynb": {"epochs": 1, "seeds": [0], "train_subset": 256, "optimizers": ["madam", "sgd"],
                      "ablation_seeds": [0, 1], "ablation_rates": {"smgd/separate": [0.01], "madam/joint": [1e-3, 3e-3]}},
    "04_pareto_front.ipynb": {"dense_points": 3, "include_original": False, "epochs": 1, "train_subset": 256,
                              "joint_tail": []},
    "05_knee_search.ipynb": {"epochs": 1, "knee_epochs": 1, "train_subset": 256, "max_history": 5,
                             "methods": ["bisection", "stochastic"], "knee_seeds": [0, 1]},
    "06_post_training_pruning.ipynb": {"datasets": ["fashion_mnist"], "epochs": 1, "train_subset": 1000,
                                       "ks": [0.0, 0.5, 0.9], "compact_ks": [0.5], "latency_repeats": 2},
    "07_structured_global_iterative.ipynb": {"width": 0.05, "epochs": 1, "train_subset": 256, "gmp_epochs": 1,
                                             "targets": [0.5, 0.9], "latency_repeats": 2, "latency_batch": 16},
    "08_budget_constrained_pruning.ipynb": {"models": ["lenet5"], "lenet_epochs": 1, "lenet_train_subset": 512,
                                            "budgets": [["parameters", 0.7], ["flops", 0.7]], "updates": 2,
                                            "episodes_per_update": 2, "validation_size": 300, "eval_size": 200,
                                            "episode_finetune_steps": 2, "seeds": [0, 1], "run_missing": True},
    "09_benchmarks.ipynb": {},  # reads the committed CSVs; the benchmarks are scripts, not CI work
}
# Notebooks that also run on tiny parameters for a second dataset.
EXTRA_TINY_RUNS = {
    "03_smgd.ipynb#cifar10": {"dataset": "cifar10", "epochs": 1, "seeds": [0], "train_subset": 128,
                              "optimizers": ["smgd", "rmsprop"], "itp": "on"},
    "04_pareto_front.ipynb#joint": {"scalarizations": ["joint"], "dense_points": 3, "include_original": False,
                                    "epochs": 1, "train_subset": 256, "joint_tail": [2e-3]},
    "04_pareto_front.ipynb#val": {"dense_points": 2, "include_original": False, "epochs": 1, "train_subset": 256,
                                  "select_on": "val", "joint_tail": [2e-3]},
    "08_budget_constrained_pruning.ipynb#vgg": {"models": ["vgg"], "vgg_epochs": 1, "vgg_train_subset": 256,
                                                "budgets": [["parameters", 0.7]], "vgg_updates": 2, "episodes_per_update": 2,
                                                "validation_size": 300, "eval_size": 200, "vgg_episode_finetune_steps": 1,
                                                "seeds": [0], "run_missing": True},
    "08_budget_constrained_pruning.ipynb#resnet": {"models": ["resnet20"], "resnet_epochs": 1, "resnet_train_subset": 256,
                                                   "resnet_budgets": [["parameters", 0.9]], "resnet_updates": 2,
                                                   "episodes_per_update": 2, "validation_size": 300, "eval_size": 200,
                                                   "resnet_episode_finetune_steps": 1, "seeds": [0], "run_missing": True},
    "05_knee_search.ipynb#clean": {"epochs": 1, "knee_epochs": 1, "train_subset": 256, "max_history": 5,
                                   "methods": ["dichotomic", "grid"], "grid_lambda2": [0.0, 0.05, 0.1], "knee_seeds": [0],
                                   "protocol": "clean", "select_on": "val"},
}


# Datasets each tiny run loads, derived from its parameters (helpers.notebooks.parameters.notebook_datasets);
# a run whose data cannot be loaded offline is skipped with one reason.
from helpers.notebooks.parameters import notebook_datasets  # noqa: E402

NEEDS_DATA = {run: datasets for run, parameters in {**TINY_PARAMETERS, **EXTRA_TINY_RUNS}.items()
              if (datasets := notebook_datasets(run, parameters))}


def test_every_notebook_has_tiny_parameters_and_a_parameters_cell():
    found = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert found == sorted(TINY_PARAMETERS), "add the new notebook to TINY_PARAMETERS"
    # every run that trains names its data: notebooks 01 and 09 load none
    assert sorted(set(TINY_PARAMETERS) - set(NEEDS_DATA)) == ["01_biobjective_problem.ipynb", "09_benchmarks.ipynb"]
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

"""The reproducibility package: documented parameters, one repository URL, the lock behind every
install path, canonical outputs only from default parameters, byte-stable figures, stored
notebooks without volatile output, and the data folder resolved the same way everywhere."""

import json
import re
import warnings
from pathlib import Path

import pytest

from helpers import paths
from helpers.notebooks import execution, output_folders, repository

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _code(nb_path):
    return [("".join(c["source"]), c) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_a_type_and_a_help_line(notebook):
    papermill = pytest.importorskip("papermill")
    listed = papermill.inspect_notebook(str(notebook))
    source = next(s for s, c in _code(notebook) if "parameters" in c["metadata"].get("tags", []))
    assigned = re.findall(r"^([A-Za-z_]\w*)\s*[:=]", source, re.M)
    assert sorted(listed) == sorted(assigned), "papermill could not parse every line of the parameters cell"
    for name, parameter in listed.items():
        assert parameter["inferred_type_name"] not in ("None", ""), f"{name}: no type annotation"
        assert parameter["help"].strip(), f"{name}: no help comment"
    others = "\n".join(s for s, c in _code(notebook) if "parameters" not in c["metadata"].get("tags", []))
    unused = [name for name in listed if not re.search(rf"\b{name}\b", others)]
    assert not unused, f"parameters the notebook never uses: {unused}"
    from helpers.notebooks.manifest import NOTEBOOKS

    assert sorted(NOTEBOOKS[notebook.stem].parameters) == sorted(listed), \
        "helpers.notebooks.manifest must declare a spec for exactly the parameters of the notebook"


def test_badges_setup_cells_and_binder_follow_the_one_url_and_the_lock():
    url = repository.repository_url()
    assert url.startswith("https://github.com/") and "OWNER" not in url
    assert repository.check() == []
    for path in [ROOT / "README.md", *NOTEBOOKS]:
        assert "OWNER/REPO" not in path.read_text(), path.name
        assert "sys.path" not in path.read_text(), path.name


def test_the_lock_drives_every_install_path():
    lock = repository.lock_pins()
    for name in ("tensorflow", "keras", "numpy", "pandas", "papermill", "pytest", "nbval", "distributed"):
        assert name in lock, f"{name} is not pinned in requirements/lock.txt"
    assert repository.binder_pins() == lock
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "--no-deps" in post_build and "pip install" in post_build
    makefile = (ROOT / "Makefile").read_text()
    assert "-r $(LOCK)" in makefile and "--no-deps -e ." in makefile and "\nlock:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_two_saves_of_a_figure_are_byte_identical(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.plotting import savefig

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [2, 0, 1])
    first = [p.read_bytes() for p in savefig(fig, "same", tmp_path / "a")]
    second = [p.read_bytes() for p in savefig(fig, "same", tmp_path / "b")]
    plt.close(fig)
    assert first == second
    assert b"CreationDate" not in first[1] and b"Software" not in first[0]


def test_only_default_parameters_write_canonical_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUT_ENV, str(tmp_path))
    defaults = output_folders.parameter_defaults("02_data_and_models")
    assert defaults["cnn_width"] == 1.0
    canonical = output_folders.for_notebook("02_data_and_models", dict(defaults, recompute=True, save_outputs=True))
    assert canonical.canonical and canonical.results_dir() == tmp_path / "results" / "02_data_and_models"
    variant = output_folders.for_notebook("02_data_and_models", dict(defaults, cnn_width=0.5), verbose=False)
    assert not variant.canonical and variant.slug == "cnn_width-0.5"
    assert variant.figures_dir() == tmp_path / "figures" / "02_data_and_models" / "variants" / "cnn_width-0.5"
    assert not hasattr(output_folders, "_active")  # the choice lives in the returned object only
    # the Makefile's recorded second configurations stay canonical
    smgd = output_folders.for_notebook("03_smgd", dict(output_folders.parameter_defaults("03_smgd"), dataset="cifar10"))
    assert smgd.canonical
    other = output_folders.for_notebook("03_smgd", dict(output_folders.parameter_defaults("03_smgd"), dataset="cifar10", epochs=3),
                                 verbose=False)
    assert not other.canonical and other.slug == "dataset-cifar10__epochs-3"


def test_data_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    assert paths.data_dir() == tmp_path
    monkeypatch.delenv(paths.DATA_DIR_ENV)
    shared = paths.source_root().parent / "shared" / "data"
    assert paths.data_dir() == (shared if shared.is_dir() else None)


def test_clean_strips_progress_timestamps_and_machine_paths():
    venv_file = str(Path(execution.sysconfig.get_paths()["purelib"]) / "keras" / "x.py")
    nb = {"metadata": {"widgets": {"state": {}}, "papermill": {"start_time": "2026", "duration": 3.2,
                                                              "parameters": {"a": 1}, "version": "2.7.0"}},
          "cells": [{"cell_type": "code", "metadata": {"execution": {"iopub.status.busy": "2026"},
                                                       "papermill": {"duration": 1.0}},
                     "outputs": [
                         {"output_type": "stream", "name": "stderr", "text": "runs: 50%|#####     | 1/2 [00:01<00:01, 1.0it/s]\r"},
                         {"output_type": "display_data", "metadata": {},
                          "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "0%"}},
                         {"output_type": "stream", "name": "stderr", "text": f"{venv_file}:1: UserWarning: w\n"},
                         {"output_type": "stream", "name": "stdout", "text": "a\n"},
                         {"output_type": "stream", "name": "stdout", "text": "b\n"}],
                     "source": "", "execution_count": 1}]}
    cleaned = execution.clean_notebook(nb)
    cell = cleaned["cells"][0]
    assert cell["metadata"] == {} and cleaned["metadata"]["papermill"] == {"parameters": {"a": 1}, "version": "2.7.0"}
    assert "widgets" not in cleaned["metadata"]
    assert [o.get("text") for o in cell["outputs"]] == ["keras/x.py:1: UserWarning: w\n", "a\nb\n"]


def test_clean_gives_papermills_injected_cell_a_stable_id():
    """papermill gives the injected-parameters cell a new random id on every execution, which
    made every rerun of the executed records (03 on CIFAR-10, 05's clean variant) rewrite them."""
    def executed(random_id):
        return {"metadata": {}, "cells": [
            {"cell_type": "code", "id": "params01", "metadata": {"tags": ["parameters"]}, "outputs": [], "source": ""},
            {"cell_type": "code", "id": random_id, "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
             "source": "dataset = 'cifar10'"}]}
    first, second = (execution.clean_notebook(executed(i)) for i in ("8b8dcc31", "390142c3"))
    assert first == second
    assert first["cells"][0]["id"] == "params01"  # other cells keep their ids


def test_runs_under_other_versions_are_reported():
    from helpers.run_config import RunConfig
    from helpers.runner import RunResult
    from helpers.runtime import EnvironmentMismatchWarning, check_environments, environment

    same = RunResult(RunConfig(), {}, {}, "k", Path("x"), True, environment())
    old = RunResult(RunConfig(seed=1), {}, {}, "k", Path("y"), True, dict(environment(), keras="2.3.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_environments([same]) == []
    with pytest.warns(EnvironmentMismatchWarning, match="keras 2.3.1"):
        differing = check_environments([same, old])
    assert [slug for slug, _ in differing] == [RunConfig(seed=1).slug()]


def test_environment_yml_installs_the_lock_on_binders_python():
    """environment.yml (conda) takes every package from the lock and Python from binder/runtime.txt."""
    text = (ROOT / "environment.yml").read_text()
    python = (ROOT / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    assert f"- python={python}" in lines and "- pip" in lines
    assert "- -r requirements/lock.txt" in lines and (ROOT / "requirements" / "lock.txt").is_file()
    # nothing installed beside the lock: the only pip entry is the lock, the only conda ones python and pip
    entries = [line for line in lines if line.startswith("- ")]
    assert sorted(entries) == sorted([f"- python={python}", "- pip", "- pip:", "- -r requirements/lock.txt",
                                      "- conda-forge"])


def test_clean_puts_what_a_progress_bar_leaves_of_stderr_last():
    """stdout and the progress bar's stderr reach the notebook in either order: stored the same."""
    def executed(first, second):
        return {"metadata": {}, "cells": [{"cell_type": "code", "metadata": {}, "source": "", "execution_count": 1,
                                           "outputs": [first, second]}]}
    out = {"output_type": "stream", "name": "stdout", "text": "24 runs\n"}
    bar = {"output_type": "stream", "name": "stderr", "text": "runs: 100%|##########| 2/2 [00:01<00:00, 1.0it/s]\r\n"}
    a = execution.clean_notebook(executed(dict(out), dict(bar)))
    b = execution.clean_notebook(executed(dict(bar), dict(out)))
    assert a == b and a["cells"][0]["outputs"][0]["name"] == "stdout"


def test_notebook_specs_take_the_library_vocabularies():
    """The notebooks' choices are the library's names (spelled once): every registered optimizer,
    every ablation key of the study, every budget method and cost kind is accepted, a typo is not."""
    from helpers.experiments import BUDGET_METHODS, LR_ABLATION_RATES, SEARCH_METHODS
    from helpers.notebooks.manifest import NOTEBOOKS
    from helpers.pruning.costs import COST_KINDS
    from helpers.run_config import OPTIMIZERS, PROTOCOLS, SCALARIZED_OPTIMIZERS

    smgd, knee, budget = (NOTEBOOKS[n].parameters for n in ("03_smgd", "05_knee_search", "08_budget_constrained_pruning"))
    assert smgd["optimizers"]("optimizers", list(OPTIMIZERS)) == list(OPTIMIZERS)
    assert {f"{o}/{s}" for o, s in LR_ABLATION_RATES} <= set(SCALARIZED_OPTIMIZERS)
    smgd["ablation_rates"]("ablation_rates", {key: [1e-3] for key in SCALARIZED_OPTIMIZERS})
    knee["methods"]("methods", list(SEARCH_METHODS))
    for protocol in PROTOCOLS:
        knee["protocol"]("protocol", protocol)
    budget["methods"]("methods", list(BUDGET_METHODS))
    budget["budgets"]("budgets", [[kind, 0.5] for kind in COST_KINDS])
    with pytest.raises(ValueError):
        smgd["optimizers"]("optimizers", ["no-such-optimizer"])

"""Every notebook's parameters checked, right after its ``parameters`` cell and before any work, with one
call: ``outputs = check_notebook_parameters(globals(), "03_smgd")`` (below), against the specs of its
entry in ``helpers.notebooks.manifest``. The values are only checked, never rewritten, so a bad
``papermill -p`` value fails in the first second with a message naming the parameter.
``tests/test_reproducibility.py`` checks that each notebook's parameters cell declares exactly the
parameters of its entry; a name papermill injects that is not listed is an error naming the closest
listed one.
"""

from __future__ import annotations

import ast

from ..cache import ResultCache
from ..data import TRAIN_CLASS_MIN, TRAIN_SIZES
from ..experiments.budget import BUDGET_DATASETS
from ..files import check_writable
from ..validation import check_known_parameters, check_parameters
from .manifest import NOTEBOOKS
from .output_folders import for_notebook, parameter_defaults


def check_across(notebook: str, values: dict) -> None:
    """Checks that involve several parameters of one notebook."""
    if notebook == "02_data_and_models":
        smallest = min(values["datasets"], key=TRAIN_CLASS_MIN.get)
        if values["per_class"] > TRAIN_CLASS_MIN[smallest]:
            raise ValueError(f"per_class must be <= {TRAIN_CLASS_MIN[smallest]}, the training images of the smallest "
                             f"class of {smallest}, got {values['per_class']}")
    if notebook == "03_smgd" and values["train_subset"] is not None:
        available = TRAIN_SIZES[values["dataset"]]
        if values["train_subset"] > available:
            raise ValueError(f"train_subset must be <= the {available} training images of {values['dataset']}, "
                             f"got {values['train_subset']}")
    if notebook == "08_budget_constrained_pruning" and values["eval_size"] > values["validation_size"]:
        raise ValueError(f"eval_size must be <= validation_size ({values['validation_size']}), got {values['eval_size']}")




def notebook_datasets(notebook: str, parameters: dict | None = None) -> tuple:
    """The datasets ``notebook`` (a stem or file name) loads on ``parameters`` over its defaults,
    from its ``dataset`` / ``datasets`` / ``models`` (notebook 08's, ``BUDGET_DATASETS``) parameters, else
    the manifest's ``datasets`` (``()``: none). The tests
    skip a run with one reason when one of them cannot be loaded (tests/test_notebooks.py)."""
    stem = notebook.split("#")[0].removesuffix(".ipynb")
    if stem not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}")
    values = {**parameter_defaults(stem), **(parameters or {})}
    if "dataset" in values:
        return (values["dataset"],)
    if "datasets" in values:
        return tuple(values["datasets"])
    if "models" in values:
        return tuple(dict.fromkeys(BUDGET_DATASETS[model] for model in values["models"]))
    declared = NOTEBOOKS[stem].datasets
    if declared is None:
        raise ValueError(f"{stem}'s parameters name no data and its manifest entry does not say which datasets it "
                         "loads: set datasets=(...) in helpers/notebooks/manifest.py (() if none)")
    return declared


def injected_parameters(namespace: dict) -> list[str]:
    """The names papermill injected into a running notebook: the assignments of its injected
    ``# Parameters`` cell, read from IPython's input history (``In``) in ``namespace``. Outside
    IPython (no history) there are none."""
    history = namespace.get("In")
    if not isinstance(history, (list, tuple)):
        return []
    names = []
    for source in history:
        if not (isinstance(source, str) and source.lstrip().startswith("# Parameters")):
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        for node in body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return list(dict.fromkeys(names))


def check_notebook_parameters(namespace: dict, notebook: str | None = None, **specs):
    """A notebook's parameters, checked right after its ``parameters`` cell, before any work.

    ``namespace`` is the notebook's ``globals()``. With ``notebook`` (its file stem, e.g.
    ``"03_smgd"``) the specs are the ones declared for it in its manifest entry (``NOTEBOOKS``), the
    results cache and, when ``save_outputs`` (or ``save_figures``) is true, its output folders must
    be writable, and the return value says where this run writes (``output_folders``: the
    committed folders on the default parameters only), and a name papermill injected that is not
    one of the notebook's parameters is a ``TypeError`` naming the closest one
    (``injected_parameters``). Keyword specs (``epochs=Epochs()``, ...) are checked too. Values are
    only checked, never rewritten (so cache keys stay what they were). Raises TypeError /
    ValueError naming the parameter.

    In a notebook, one cell right after the parameters cell::

        from helpers.notebooks.parameters import check_notebook_parameters

        outputs = check_notebook_parameters(globals(), "03_smgd")
    """
    if notebook is not None:
        if notebook not in NOTEBOOKS:
            raise ValueError(f"no parameters are declared for notebook {notebook!r} in helpers.notebooks.manifest")
        specs = {**NOTEBOOKS[notebook].parameters, **specs}
        check_known_parameters(injected_parameters(namespace), specs, f"notebook {notebook}")
    check_parameters(namespace, specs)
    if notebook is None:
        return None
    check_across(notebook, namespace)
    chosen = for_notebook(notebook, namespace)
    ResultCache().check_writable()
    if namespace.get("save_outputs", False):
        check_writable(chosen.results_dir(create=False), "results folder")
    if namespace.get("save_outputs", False) or namespace.get("save_figures", False):
        check_writable(chosen.figures_dir(), "figures folder")
    return chosen

"""Every notebook's parameters: type, range and choices, declared once per notebook.

A notebook checks its parameters, right after its ``parameters`` cell and before any work, with one
call: ``outputs = check_notebook_parameters(globals(), "03_smgd")`` (below). The
values are only checked, never rewritten, so a bad ``papermill -p`` value fails in the first second
with a message naming the parameter. ``tests/test_reproducibility.py`` checks that each notebook's
parameters cell declares exactly the parameters listed here; a name papermill injects that is not
listed is an error naming the closest listed one.

Every count has an upper bound, so that a typo (an extra digit or three) fails in the first second
instead of running for days or hanging (``per_class=200000`` asked matplotlib for 2 million axes):
counts of images are bounded by the data (``helpers.data``), epochs and seeds by the specs that
``RunConfig`` uses (``Epochs``, ``Seed``), the other counts by ``MAX_*`` below, about a hundred
times the largest value any notebook uses.
"""

from __future__ import annotations

import ast
import os

from ..cache import ResultCache
from ..data import DATASETS, TRAIN_CLASS_MIN, TRAIN_SIZES
from ..experiments.budget import BUDGET_DATASETS
from ..experiments.post_training import POST_TRAINING_DATASETS
from ..experiments.smgd import ITP_CHOICES, PAPER_OPTIMIZERS
from ..experiments.weighted_sum import SEARCH_METHODS, SELECT_ON
from ..optimizers import SCALARIZATIONS as SCALARIZATION_NAMES
from ..pruning.budget import BUDGET_METHODS
from ..pruning.costs import COST_KINDS
from ..run_config import OPTIMIZERS, PROTOCOLS, SCALARIZED_OPTIMIZERS
from ..files import check_writable
from ..validation import (Bool, Budget, Choice, Dict, Epochs, Float, Fraction, Int, List, Optional, Seed, Str,
                         Tuple, check_known_parameters, check_parameters)
from .output_folders import for_notebook, parameter_defaults

# Every vocabulary below is the library's own (helpers.run_config, helpers.data, the studies), never retyped.
OPTIMIZER = Choice(*OPTIMIZERS)
SCALARIZATIONS = List(Choice(*SCALARIZATION_NAMES), unique=True)
PROTOCOL = Choice(*PROTOCOLS)
BUDGET = Tuple(Choice(*COST_KINDS), Budget())
SEEDS = List(Seed(), unique=True)

MAX_IMAGES = max(TRAIN_SIZES.values())   # train subsets and batches: the largest training set
MAX_WIDTH = 4.0                          # CNN width multipliers: 4x the seed's 10 M-parameter network
MAX_GRID_POINTS = 1_000                  # weightings of notebook 04's grid (each one is a training run)
MAX_SEARCH_RUNS = 1_000                  # candidates of one knee search (each one is a training run)
MAX_REPEATS = 10_000                     # timings of one latency measurement
MAX_LATENCY_BATCH = 10_000               # a test set's worth of random inputs
MAX_UPDATES = 10_000                     # agent updates of the budget search
MAX_EPISODES = 1_000                     # episodes per agent update
MAX_STEPS = 10_000                       # fine-tuning steps per episode
# Local worker processes beyond the cores only slow each other down (a cluster: scheduler=...).
MAX_WORKERS = os.cpu_count() or 1

NOTEBOOK_PARAMETERS = {
    "01_biobjective_problem": dict(
        seed=Seed(),
        save_figures=Bool(),
    ),
    "02_data_and_models": dict(
        datasets=List(Choice(*DATASETS), unique=True),
        per_class=Int(1, max(TRAIN_CLASS_MIN.values())),  # and <= the smallest class shown (check_across)
        cnn_width=Float(0, MAX_WIDTH, min_open=True),
        save_outputs=Bool(),
    ),
    "03_smgd": dict(
        dataset=Choice(*PAPER_OPTIMIZERS),
        optimizers=Optional(List(OPTIMIZER, unique=True)),
        itp=Choice(*ITP_CHOICES),
        epochs=Optional(Epochs()),
        batch_size=Optional(Int(1, MAX_IMAGES)),
        learning_rates=Dict(OPTIMIZER, Float(0, min_open=True)),
        seeds=Optional(SEEDS),
        train_subset=Optional(Int(1, MAX_IMAGES)),  # and <= the dataset's (check_across)
        paper_protocol=Bool(),
        protocol=PROTOCOL,
        recompute=Bool(),
        cached_only=Bool(),
        lr_ablation=Bool(),
        ablation_seeds=SEEDS,
        ablation_rates=Optional(Dict(Choice(*SCALARIZED_OPTIMIZERS), List(Float(0, min_open=True), unique=True))),
        save_outputs=Bool(),
        workers=Int(0, MAX_WORKERS),
        scheduler=Str(),
    ),
    "04_pareto_front": dict(
        scalarizations=SCALARIZATIONS,
        dense_points=Int(0, MAX_GRID_POINTS),
        dense_max=Float(0, 1),
        include_original=Bool(),
        joint_tail=List(Float(0, 1), min_length=0, unique=True),
        epochs=Epochs(),
        seed=Seed(),
        learning_rate=Float(0, min_open=True),
        train_subset=Optional(Int(1, TRAIN_SIZES["mnist"])),
        select_on=Choice(*SELECT_ON),
        recompute=Bool(),
        save_outputs=Bool(),
        workers=Int(0, MAX_WORKERS),
        scheduler=Str(),
    ),
    "05_knee_search": dict(
        scalarizations=SCALARIZATIONS,
        methods=List(Choice(*SEARCH_METHODS), unique=True),
        epochs=Epochs(),
        knee_epochs=Epochs(),
        knee_seeds=SEEDS,
        max_history=Int(1, MAX_SEARCH_RUNS),
        grid_lambda2=Optional(List(Float(0, 1), min_length=2)),
        seed=Seed(),
        learning_rate=Float(0, min_open=True),
        train_subset=Optional(Int(1, TRAIN_SIZES["mnist"])),
        protocol=PROTOCOL,
        select_on=Choice(*SELECT_ON),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "06_post_training_pruning": dict(
        datasets=List(Choice(*POST_TRAINING_DATASETS), unique=True),
        epochs=Epochs(),
        batch_size=Int(1, TRAIN_SIZES["mnist"]),
        learning_rate=Float(0, min_open=True),
        ks=List(Fraction()),
        finetune_epochs=Epochs(0),
        prune_bias=Bool(),
        compact_ks=List(Fraction()),
        latency_repeats=Int(1, MAX_REPEATS),
        train_subset=Optional(Int(1, TRAIN_SIZES["mnist"])),
        seed=Seed(),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "07_structured_global_iterative": dict(
        width=Float(0, MAX_WIDTH, min_open=True),
        epochs=Epochs(),
        batch_size=Int(1, TRAIN_SIZES["cifar10"]),
        learning_rate=Float(0, min_open=True),
        targets=List(Fraction()),
        retrain_epochs=Epochs(0),
        gmp_epochs=Epochs(),
        retrain_batch=Int(1, TRAIN_SIZES["cifar10"]),
        train_subset=Optional(Int(1, TRAIN_SIZES["cifar10"])),
        latency_batch=Int(1, MAX_LATENCY_BATCH),
        latency_repeats=Int(1, MAX_REPEATS),
        seed=Seed(),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "08_budget_constrained_pruning": dict(
        models=List(Choice(*BUDGET_DATASETS), unique=True),
        budgets=List(BUDGET),
        resnet_budgets=List(BUDGET),
        methods=List(Choice(*BUDGET_METHODS), unique=True),
        lenet_epochs=Epochs(),
        lenet_train_subset=Optional(Int(1, TRAIN_SIZES["mnist"])),
        vgg_epochs=Epochs(),
        vgg_train_subset=Optional(Int(1, TRAIN_SIZES["cifar10"])),
        resnet_epochs=Epochs(),
        resnet_train_subset=Optional(Int(1, TRAIN_SIZES["cifar10"])),
        validation_size=Int(1, min(TRAIN_SIZES.values()) - 1),
        eval_size=Int(1),  # and <= validation_size (check_across)
        updates=Int(1, MAX_UPDATES),
        vgg_updates=Int(1, MAX_UPDATES),
        resnet_updates=Int(1, MAX_UPDATES),
        episodes_per_update=Int(2, MAX_EPISODES),
        episode_finetune_steps=Int(0, MAX_STEPS),
        vgg_episode_finetune_steps=Int(0, MAX_STEPS),
        resnet_episode_finetune_steps=Int(0, MAX_STEPS),
        finetune_epochs=Epochs(0),
        seeds=SEEDS,
        run_missing=Bool(),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "09_benchmarks": dict(
        run_missing=Bool(),
        save_outputs=Bool(),
    ),
}


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


# The datasets a notebook loads that no parameter names: 04 and 05 train LeNet-5 on MNIST, 07 the
# seed's CNN on CIFAR-10. The others name theirs (``dataset``, ``datasets``, ``models``); 01 and 09
# load none.
FIXED_DATASETS = {"04_pareto_front": ("mnist",), "05_knee_search": ("mnist",),
                  "07_structured_global_iterative": ("cifar10",)}
MODEL_DATASETS = BUDGET_DATASETS  # notebook 08's ``models``


def notebook_datasets(notebook: str, parameters: dict | None = None) -> tuple:
    """The datasets ``notebook`` (a stem or file name) loads on ``parameters`` over its defaults,
    from its ``dataset`` / ``datasets`` / ``models`` parameters, else ``FIXED_DATASETS``. The tests
    skip a run with one reason when one of them cannot be loaded (tests/test_notebooks.py)."""
    stem = notebook.split("#")[0].removesuffix(".ipynb")
    if stem not in NOTEBOOK_PARAMETERS:
        raise ValueError(f"unknown notebook {notebook!r}")
    values = {**parameter_defaults(stem), **(parameters or {})}
    if "dataset" in values:
        return (values["dataset"],)
    if "datasets" in values:
        return tuple(values["datasets"])
    if "models" in values:
        return tuple(dict.fromkeys(MODEL_DATASETS[model] for model in values["models"]))
    return FIXED_DATASETS.get(stem, ())


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
    ``"03_smgd"``) the specs are the ones declared for it above (``NOTEBOOK_PARAMETERS``), the
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
        if notebook not in NOTEBOOK_PARAMETERS:
            raise ValueError(f"no parameters are declared for notebook {notebook!r} in helpers.notebooks.parameters")
        specs = {**NOTEBOOK_PARAMETERS[notebook], **specs}
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

"""One entry per notebook, everything the project knows about it in one place: its parameters'
specs (checked by its check cell, ``helpers.notebooks.parameters``), its tiny test parameters
(``tests/test_notebooks.py``), the data it loads when no parameter names it (the rest is derived
from its parameters, ``parameters.notebook_datasets``), and its canonical variants: the second
configurations whose outputs are committed beside the defaults' (``output_folders``; executed by
``python -m helpers.notebooks variants``, which ``make figures`` runs).

Adding a notebook: the ``.ipynb`` (its ``parameters`` cell, then the check cell
``outputs = check_notebook_parameters(globals(), "NN_name")``) and its entry here.

Every count has an upper bound, so that a typo (an extra digit or three) fails in the first second
instead of running for days or hanging (``per_class=200000`` asked matplotlib for 2 million axes):
counts of images are bounded by the data (``helpers.data``), epochs and seeds by the specs that
``RunConfig`` uses (``Epochs``, ``Seed``), the other counts by ``MAX_*`` below, about a hundred
times the largest value any notebook uses. Every vocabulary is the library's own, never retyped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..data import DATASETS, TRAIN_CLASS_MIN, TRAIN_SIZES
from ..experiments.budget import BUDGET_DATASETS
from ..experiments.post_training import POST_TRAINING_DATASETS
from ..experiments.smgd import ITP_CHOICES, PAPER_OPTIMIZERS
from ..experiments.weighted_sum import SEARCH_METHODS, SELECT_ON
from ..optimizers import SCALARIZATIONS as SCALARIZATION_NAMES
from ..pruning.budget import BUDGET_METHODS
from ..pruning.costs import COST_KINDS
from ..run_config import OPTIMIZERS, PROTOCOLS, SCALARIZED_OPTIMIZERS
from ..validation import Bool, Budget, Choice, Dict, Epochs, Float, Fraction, Int, List, Optional, Seed, Str, Tuple


@dataclass(frozen=True)
class Variant:
    """A canonical second configuration of a notebook: the executed record it is kept in (relative to
    the project root), the parameters it differs by (in the order papermill injects them: the
    record's injected cell lists them so), and what ``make figures`` prints before running it."""

    output: str
    parameters: dict
    title: str


@dataclass(frozen=True)
class Notebook:
    """A notebook's parameter specs, tiny test parameters (and those of its second tiny runs,
    ``"<notebook>.ipynb#<name>"`` in the tests), canonical variants, and the datasets it loads that
    no parameter names (04 and 05 train LeNet-5 on MNIST, 07 project 003's CNN on CIFAR-10; ``()``:
    it loads none). A notebook whose parameters name no data must say which it loads: ``None``,
    the default, is "not declared", an error in the tests."""

    parameters: dict
    tiny: dict
    tiny_variants: dict = field(default_factory=dict)
    variants: tuple = ()
    datasets: tuple | None = None


OPTIMIZER = Choice(*OPTIMIZERS)
SCALARIZATIONS = List(Choice(*SCALARIZATION_NAMES), unique=True)
PROTOCOL = Choice(*PROTOCOLS)
BUDGET = Tuple(Choice(*COST_KINDS), Budget())
SEEDS = List(Seed(), unique=True)

MAX_IMAGES = max(TRAIN_SIZES.values())   # train subsets and batches: the largest training set
MAX_WIDTH = 4.0                          # CNN width multipliers: 4x project 003's 10 M-parameter network
MAX_GRID_POINTS = 1_000                  # weightings of notebook 04's grid (each one is a training run)
MAX_SEARCH_RUNS = 1_000                  # candidates of one knee search (each one is a training run)
MAX_REPEATS = 10_000                     # timings of one latency measurement
MAX_LATENCY_BATCH = 10_000               # a test set's worth of random inputs
MAX_UPDATES = 10_000                     # agent updates of the budget search
MAX_EPISODES = 1_000                     # episodes per agent update
MAX_STEPS = 10_000                       # fine-tuning steps per episode
# Local worker processes beyond the cores only slow each other down (a cluster: scheduler=...).
MAX_WORKERS = os.cpu_count() or 1

NOTEBOOKS = {
    "01_biobjective_problem": Notebook(
        parameters=dict(
            seed=Seed(),
            save_figures=Bool(),
        ),
        tiny={"seed": 1},
        datasets=(),
    ),
    "02_data_and_models": Notebook(
        parameters=dict(
            datasets=List(Choice(*DATASETS), unique=True),
            per_class=Int(1, max(TRAIN_CLASS_MIN.values())),  # and <= the smallest class shown (check_across)
            cnn_width=Float(0, MAX_WIDTH, min_open=True),
            save_outputs=Bool(),
        ),
        tiny={"datasets": ["mnist", "cifar10"], "per_class": 2, "cnn_width": 0.25},
    ),
    "03_smgd": Notebook(
        parameters=dict(
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
        tiny={"epochs": 1, "seeds": [0], "train_subset": 256, "optimizers": ["madam", "sgd"], "ablation_seeds": [0, 1],
              "ablation_rates": {"smgd/separate": [0.01], "madam/joint": [1e-3, 3e-3]}},
        tiny_variants={
            "cifar10": {"dataset": "cifar10", "epochs": 1, "seeds": [0], "train_subset": 128,
                        "optimizers": ["smgd", "rmsprop"], "itp": "on"},
        },
        variants=(
            Variant("results/03_smgd/03_smgd_cifar10.ipynb", {"dataset": "cifar10"},
                    "the CIFAR-10 comparison (dataset cifar10)"),
        ),
    ),
    "04_pareto_front": Notebook(
        parameters=dict(
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
        tiny={"dense_points": 3, "include_original": False, "epochs": 1, "train_subset": 256, "joint_tail": []},
        tiny_variants={
            "joint": {"scalarizations": ["joint"], "dense_points": 3, "include_original": False, "epochs": 1,
                      "train_subset": 256, "joint_tail": [2e-3]},
            "val": {"dense_points": 2, "include_original": False, "epochs": 1, "train_subset": 256,
                    "select_on": "val", "joint_tail": [2e-3]},
        },
        datasets=("mnist",),
    ),
    "05_knee_search": Notebook(
        parameters=dict(
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
        tiny={"epochs": 1, "knee_epochs": 1, "train_subset": 256, "max_history": 5,
              "methods": ["bisection", "stochastic"], "knee_seeds": [0, 1]},
        tiny_variants={
            "clean": {"epochs": 1, "knee_epochs": 1, "train_subset": 256, "max_history": 5,
                      "methods": ["dichotomic", "grid"], "grid_lambda2": [0.0, 0.05, 0.1], "knee_seeds": [0],
                      "protocol": "clean", "select_on": "val"},
        },
        variants=(
            Variant("results/05_knee_search/05_knee_search_val_clean.ipynb",
                    {"methods": ["bisection", "dichotomic", "stochastic"], "knee_seeds": [0], "select_on": "val",
                     "protocol": "clean"},
                    "clean variant: selection on a validation split (REPRODUCTION_NOTES.md, B22), convex filter"),
        ),
        datasets=("mnist",),
    ),
    "06_post_training_pruning": Notebook(
        parameters=dict(
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
        tiny={"datasets": ["fashion_mnist"], "epochs": 1, "train_subset": 1000, "ks": [0.0, 0.5, 0.9],
              "compact_ks": [0.5], "latency_repeats": 2},
    ),
    "07_structured_global_iterative": Notebook(
        parameters=dict(
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
            full_size_seeds=SEEDS,
            full_size_retrain_subset=Int(1, TRAIN_SIZES["cifar10"]),
            recompute=Bool(),
            save_outputs=Bool(),
        ),
        tiny={"width": 0.05, "epochs": 1, "train_subset": 256, "gmp_epochs": 1, "targets": [0.5, 0.9],
              "latency_repeats": 2, "latency_batch": 16},
        datasets=("cifar10",),
    ),
    "08_budget_constrained_pruning": Notebook(
        parameters=dict(
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
            resnet_bn_recalibration=Int(0, TRAIN_SIZES["cifar10"]),
            finetune_epochs=Epochs(0),
            seeds=SEEDS,
            run_missing=Bool(),
            recompute=Bool(),
            save_outputs=Bool(),
        ),
        tiny={"models": ["lenet5"], "lenet_epochs": 1, "lenet_train_subset": 512,
              "budgets": [["parameters", 0.7], ["flops", 0.7]], "updates": 2, "episodes_per_update": 2,
              "validation_size": 300, "eval_size": 200, "episode_finetune_steps": 2, "seeds": [0, 1],
              "run_missing": True},
        tiny_variants={
            "vgg": {"models": ["vgg"], "vgg_epochs": 1, "vgg_train_subset": 256, "budgets": [["parameters", 0.7]],
                    "vgg_updates": 2, "episodes_per_update": 2, "validation_size": 300, "eval_size": 200,
                    "vgg_episode_finetune_steps": 1, "seeds": [0], "run_missing": True},
            "resnet": {"models": ["resnet20"], "resnet_epochs": 1, "resnet_train_subset": 256,
                       "resnet_budgets": [["parameters", 0.9]], "resnet_updates": 2, "episodes_per_update": 2,
                       "validation_size": 300, "eval_size": 200, "resnet_episode_finetune_steps": 1, "seeds": [0],
                       "run_missing": True},
        },
    ),
    "09_benchmarks": Notebook(
        parameters=dict(
            run_missing=Bool(),
            save_outputs=Bool(),
        ),
        tiny={},
        datasets=(),
    ),
}

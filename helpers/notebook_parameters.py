"""Every notebook's parameters: type, range and choices, declared once per notebook.

A notebook checks its parameters, right after its ``parameters`` cell and before any work, with one
call: ``outputs = check_notebook_parameters(globals(), "03_smgd")`` (``helpers.validation``). The
values are only checked, never rewritten, so a bad ``papermill -p`` value fails in the first second
with a message naming the parameter. ``tests/test_reproducibility.py`` checks that each notebook's
parameters cell declares exactly the parameters listed here.
"""

from __future__ import annotations

from .validation import Bool, Budget, Choice, Dict, Float, Fraction, Int, List, Optional, Str, Tuple

OPTIMIZER = Choice("smgd", "madam", "mrmsprop", "sgd", "adam", "rmsprop")
SCALARIZATIONS = List(Choice("separate", "joint"), unique=True)

NOTEBOOK_PARAMETERS = {
    "01_biobjective_problem": dict(
        seed=Int(0),
        save_figures=Bool(),
    ),
    "02_data_and_models": dict(
        datasets=List(Choice("mnist", "fashion_mnist", "cifar10"), unique=True),
        per_class=Int(1),
        cnn_width=Float(0, min_open=True),
        save_outputs=Bool(),
    ),
    "03_smgd": dict(
        dataset=Choice("mnist", "cifar10"),
        optimizers=Optional(List(OPTIMIZER, unique=True)),
        itp=Choice("on", "off", "both"),
        epochs=Optional(Int(1)),
        batch_size=Optional(Int(1)),
        learning_rates=Dict(OPTIMIZER, Float(0, min_open=True)),
        seeds=Optional(List(Int(0), unique=True)),
        train_subset=Optional(Int(1)),
        paper_protocol=Bool(),
        protocol=Choice("faithful", "clean"),
        recompute=Bool(),
        cached_only=Bool(),
        lr_ablation=Bool(),
        ablation_seeds=List(Int(0), unique=True),
        ablation_rates=Optional(Dict(Choice("smgd/separate", "madam/separate", "madam/joint", "mrmsprop/separate", "mrmsprop/joint"), List(Float(0, min_open=True), unique=True))),
        save_outputs=Bool(),
        workers=Int(0),
        scheduler=Str(),
    ),
    "04_pareto_front": dict(
        scalarizations=SCALARIZATIONS,
        dense_points=Int(0),
        dense_max=Float(0, 1),
        include_original=Bool(),
        epochs=Int(1),
        seed=Int(0),
        learning_rate=Float(0, min_open=True),
        train_subset=Optional(Int(1)),
        select_on=Choice("test", "val"),
        recompute=Bool(),
        save_outputs=Bool(),
        workers=Int(0),
        scheduler=Str(),
    ),
    "05_knee_search": dict(
        scalarizations=SCALARIZATIONS,
        methods=List(Choice("bisection", "dichotomic", "stochastic", "grid"), unique=True),
        epochs=Int(1),
        knee_epochs=Int(1),
        knee_seeds=List(Int(0), unique=True),
        max_history=Int(1),
        grid_lambda2=Optional(List(Float(0, 1), min_length=2)),
        seed=Int(0),
        learning_rate=Float(0, min_open=True),
        train_subset=Optional(Int(1)),
        protocol=Choice("faithful", "clean"),
        select_on=Choice("test", "val"),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "06_post_training_pruning": dict(
        datasets=List(Choice("mnist", "fashion_mnist"), unique=True),
        epochs=Int(1),
        batch_size=Int(1),
        learning_rate=Float(0, min_open=True),
        ks=List(Fraction()),
        finetune_epochs=Int(0),
        prune_bias=Bool(),
        compact_ks=List(Fraction()),
        latency_repeats=Int(1),
        train_subset=Optional(Int(1, 60_000)),
        seed=Int(0),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "07_structured_global_iterative": dict(
        width=Float(0, min_open=True),
        epochs=Int(1),
        batch_size=Int(1),
        learning_rate=Float(0, min_open=True),
        targets=List(Fraction()),
        retrain_epochs=Int(0),
        gmp_epochs=Int(1),
        retrain_batch=Int(1),
        train_subset=Optional(Int(1, 50_000)),
        latency_batch=Int(1),
        latency_repeats=Int(1),
        seed=Int(0),
        recompute=Bool(),
        save_outputs=Bool(),
    ),
    "08_budget_constrained_pruning": dict(
        models=List(Choice("lenet5", "vgg"), unique=True),
        budgets=List(Tuple(Choice("parameters", "flops"), Budget())),
        methods=List(Choice("rl", "uniform", "global"), unique=True),
        lenet_epochs=Int(1),
        lenet_train_subset=Optional(Int(1)),
        vgg_epochs=Int(1),
        vgg_train_subset=Optional(Int(1)),
        validation_size=Int(1),
        eval_size=Int(1),
        updates=Int(1),
        vgg_updates=Int(1),
        episodes_per_update=Int(2),
        episode_finetune_steps=Int(0),
        vgg_episode_finetune_steps=Int(0),
        finetune_epochs=Int(0),
        seed=Int(0),
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
    if notebook == "08_budget_constrained_pruning" and values["eval_size"] > values["validation_size"]:
        raise ValueError(f"eval_size must be <= validation_size ({values['validation_size']}), got {values['eval_size']}")

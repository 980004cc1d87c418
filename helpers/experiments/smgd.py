"""Notebook 03: the optimizer comparison (SMGD, MAdam, MRMSprop against their Keras baselines,
REPRODUCTION_NOTES.md §6.1) and the learning-rate ablation of the min-norm methods (the paper's
eta0 is unknown).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..runner import RunConfig
from ..validation import Choice, Dict, Float, Int, List, Optional, check_choice, check_parameters

# The optimizer comparison of REPRODUCTION_NOTES.md §6.1: multi-objective methods and their Keras baselines.
PAPER_OPTIMIZERS = {"mnist": ("smgd", "madam", "sgd", "adam"),
                    "cifar10": ("smgd", "mrmsprop", "sgd", "rmsprop")}
PAPER_EPOCHS = {"mnist": 30, "cifar10": 125}
ITP_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}


def smgd_comparison(dataset="mnist", optimizers=None, itp="both", epochs=None, seeds=(0,),
                    learning_rates=None, batch_size=None, train_subset=None, protocol="faithful",
                    eval_train=True):
    """Configs of notebook 03: every (optimizer, itp, seed), in seed-major order so that an
    interrupted sweep has finished whole seeds first.

    ``learning_rates`` maps optimizer -> eta0 (per-optimizer rates, REPRODUCTION_NOTES.md, B6); missing ones
    take the protocol default.
    """
    from ..data import check_dataset_name
    from ..runner import OPTIMIZERS

    dataset = check_dataset_name(dataset)
    if dataset not in PAPER_OPTIMIZERS and optimizers is None:
        raise ValueError(f"dataset {dataset!r} has no paper optimizers; choose one of {', '.join(PAPER_OPTIMIZERS)} "
                         "or pass optimizers")
    itp = check_choice("itp", itp, ITP_CHOICES)
    checked = check_parameters(
        dict(optimizers=optimizers, epochs=epochs, seeds=seeds, learning_rates=learning_rates),
        dict(optimizers=Optional(List(Choice(*OPTIMIZERS), unique=True)), epochs=Optional(Int(1)),
             seeds=List(Int(0), unique=True), learning_rates=Optional(Dict(Choice(*OPTIMIZERS),
                                                                           Float(0.0, min_open=True)))))
    optimizers, epochs, seeds = checked["optimizers"], checked["epochs"], checked["seeds"]
    optimizers = tuple(optimizers or PAPER_OPTIMIZERS[dataset])
    learning_rates = dict(checked["learning_rates"] or {})
    unknown = set(learning_rates) - set(optimizers)
    if unknown:
        raise ValueError(f"learning rates given for optimizers not in the run: {sorted(unknown)}")
    configs = [RunConfig(dataset=dataset, optimizer=opt, itp=flag,
                         epochs=epochs if epochs is not None else PAPER_EPOCHS[dataset],
                         seed=seed, learning_rate=learning_rates.get(opt), batch_size=batch_size,
                         train_subset=train_subset, protocol=protocol, eval_train=eval_train)
               for seed, opt, flag in itertools.product(seeds, optimizers, ITP_CHOICES[itp])]
    return [c.resolved() for c in configs]  # validates everything before any training


SUMMARY_COLUMNS = ["optimizer", "itp", "seed", "epochs", "train_acc", "test_acc", "test_ce", "l1_dense", "nnz_dense",
                   "dense_weights", "pruned_fraction_dense"]
SUMMARY_TAIL = ["learning_rate", "batch_size", "train_subset", "protocol", "train_seconds"]


def comparison_summary(results):
    """Notebook 03's ``<dataset>_summary.csv``: one row per run, nonzeros and pruned fractions per
    dense layer included."""
    from ..runner import summary_frame

    summary = summary_frame(results)
    per_layer = [c for c in summary.columns if c.startswith("nnz/")] + \
        [c for c in summary.columns if c.startswith("pruned_fraction/")]
    return summary[SUMMARY_COLUMNS + per_layer + SUMMARY_TAIL]


def comparison_table(summary):
    """Mean ± sample std over seeds per (optimizer, itp) of notebook 03's summary."""
    import pandas as pd

    def mean_std(frame, column, digits):
        g = frame.groupby(["optimizer", "itp"], sort=False)[column].agg(["mean", "std"])
        return g.apply(lambda r: f"{r['mean']:.{digits}f} ± {0 if np.isnan(r['std']) else r['std']:.{digits}f}", axis=1)

    return pd.DataFrame({
        "test acc": mean_std(summary, "test_acc", 4),
        "test CE": mean_std(summary, "test_ce", 4),
        "dense pruned %": mean_std(summary.assign(p=100 * summary.pruned_fraction_dense), "p", 1),
        **{f"{c.split('/')[1]} pruned %": mean_std(summary.assign(p=100 * summary[c]), "p", 1)
           for c in summary.columns if c.startswith("pruned_fraction/")},
        "runs": summary.groupby(["optimizer", "itp"], sort=False).size(),
    })


# The learning-rate ablation of the min-norm methods: the paper's eta0 is unknown.

LR_ABLATION_RATES = {("smgd", "separate"): (3e-3, 1e-2, 3e-2, 1e-1),
                     ("madam", "separate"): (1e-4, 3e-4, 1e-3, 3e-3),
                     ("madam", "joint"): (1e-4, 3e-4, 1e-3, 3e-3)}


def lr_ablation(rates=None, seeds=(0,), epochs=30, train_subset=None, eval_train=True):
    """Configs of the eta0 ablation: min-norm + ITP on MNIST with the paper's schedule, every
    (optimizer, scalarization) at each of its rates (``rates`` maps (optimizer, scalarization) to
    rates; default ``LR_ABLATION_RATES``). The notebook-03 runs at the default rates are reused."""
    rates = LR_ABLATION_RATES if rates is None else rates
    configs = [RunConfig(dataset="mnist", optimizer=optimizer, scalarization=scalarization, itp=True,
                         epochs=epochs, seed=seed, learning_rate=float(lr), train_subset=train_subset,
                         eval_train=eval_train)
               for seed in seeds for (optimizer, scalarization), values in rates.items() for lr in values]
    return [c.resolved() for c in configs]


def lr_ablation_table(results):
    """One row per ablation run: ``optimizer, scalarization, learning_rate, seed, test_acc,
    pruned_fraction_dense``, nonzeros per dense layer, and the epoch-mean c2 (mean over epochs
    of each epoch's mean min-norm weight of the L1 objective) and its last-epoch value."""
    import pandas as pd

    rows = []
    for r in results:
        c2 = np.array([v for v in r.history["c2"][1:] if v is not None], dtype=float)
        rows.append({"optimizer": r.config.optimizer, "scalarization": r.config.scalarization,
                     "learning_rate": r.config.learning_rate, "seed": r.config.seed,
                     "test_acc": r.summary["test_acc"], "pruned_fraction_dense": r.summary["pruned_fraction_dense"],
                     "nnz_dense": r.summary["nnz_dense"],
                     **{k: v for k, v in r.summary.items() if k.startswith("nnz/")},
                     "c2_mean": float(c2.mean()), "c2_last_epoch": float(c2[-1])})
    return pd.DataFrame(rows).sort_values(["optimizer", "scalarization", "learning_rate", "seed"],
                                          ascending=[False, False, True, True]).reset_index(drop=True)


def closest_to_reference(table, accuracy=None, pruned=None):
    """Per (optimizer, scalarization), the learning rate whose seed-0 run is closest to the paper's
    MNIST reference lines (test accuracy 0.989, 95.6% of the dense weights pruned), by
    ``|pruned - 0.956| + 10 |accuracy - 0.989|`` (0.1 accuracy points weigh as 1 point of sparsity).
    Returns ``{(optimizer, scalarization): rate}``."""
    from ..paper import MNIST_REFERENCE_ACCURACY, MNIST_REFERENCE_PRUNED_DENSE

    accuracy = MNIST_REFERENCE_ACCURACY if accuracy is None else accuracy
    pruned = MNIST_REFERENCE_PRUNED_DENSE if pruned is None else pruned
    first = table[table.seed == table.seed.min()]
    distance = (first.pruned_fraction_dense - pruned).abs() + 10 * (first.test_acc - accuracy).abs()
    best = first.assign(distance=distance).sort_values("distance").groupby(["optimizer", "scalarization"]).head(1)
    return {(row.optimizer, row.scalarization): row.learning_rate for row in best.itertuples()}

"""The paper's experiments as lists of ``RunConfig``: one definition shared by the notebooks
and by long background sweeps (``python -m helpers.experiments smgd --dataset mnist``).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from .runner import RunConfig, run_sweep

# The optimizer comparison of spec 6.1: multi-objective methods and their Keras baselines.
PAPER_OPTIMIZERS = {"mnist": ("smgd", "madam", "sgd", "adam"),
                    "cifar10": ("smgd", "mrmsprop", "sgd", "rmsprop")}
PAPER_EPOCHS = {"mnist": 30, "cifar10": 125}
ITP_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}


def smgd_comparison(dataset="mnist", optimizers=None, itp="both", epochs=None, seeds=(0,),
                    learning_rates=None, batch_size=None, train_subset=None, protocol="faithful",
                    eval_train=True):
    """Configs of notebook 03: every (optimizer, itp, seed), in seed-major order so that an
    interrupted sweep has finished whole seeds first.

    ``learning_rates`` maps optimizer -> eta0 (per-optimizer rates, spec B6); missing ones
    take the protocol default.
    """
    if itp not in ITP_CHOICES:
        raise ValueError(f"itp must be one of {', '.join(ITP_CHOICES)}, got {itp!r}")
    optimizers = tuple(optimizers or PAPER_OPTIMIZERS[dataset])
    learning_rates = dict(learning_rates or {})
    unknown = set(learning_rates) - set(optimizers)
    if unknown:
        raise ValueError(f"learning rates given for optimizers not in the run: {sorted(unknown)}")
    configs = [RunConfig(dataset=dataset, optimizer=opt, itp=flag, epochs=epochs or PAPER_EPOCHS[dataset],
                         seed=seed, learning_rate=learning_rates.get(opt), batch_size=batch_size,
                         train_subset=train_subset, protocol=protocol, eval_train=eval_train)
               for seed, opt, flag in itertools.product(seeds, optimizers, ITP_CHOICES[itp])]
    return [c.resolved() for c in configs]  # validates everything before any training


# The 26 weightings of the original paretofront.py, in its list order (lambda1 = 1 - lambda2).
ORIGINAL_GRID = (0, 1e-4, 3e-4, 5e-4, 7e-4, 9e-4, 1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 1e-3, 3e-3, 5e-3, 7e-3, 9e-3,
                 1e-2, 2e-2, 1.5e-2, 2.5e-2, 3e-2, 3.5e-2, 5e-2, 7e-2, 9e-2, 0.1)


def weighted_sum_run(lambda2, epochs=10, seed=0, learning_rate=1e-3, train_subset=None, validation_size=0,
                     protocol="faithful", optimizer="madam", lambda1=None):
    """One weighted-sum run of the search scripts (spec 6.2): MAdam with fixed weights
    (lambda1, lambda2), lambda1 = 1 - lambda2 unless given, ITP on, no schedule and no decay,
    batch 32, on MNIST."""
    if not 0 <= lambda2 <= 1:
        raise ValueError(f"lambda2 must be in [0, 1], got {lambda2}")
    lambda1 = 1.0 - lambda2 if lambda1 is None else float(lambda1)
    return RunConfig(dataset="mnist", optimizer=optimizer, weights=(lambda1, lambda2), itp=True,
                     epochs=epochs, seed=seed, learning_rate=learning_rate, lr_schedule="constant",
                     train_subset=train_subset, validation_size=validation_size, protocol=protocol,
                     eval_train=False).resolved()


def weighted_sum_grid(dense_points=40, dense_max=9e-4, include_original=True, **run_kwargs):
    """Configs of notebook 04: the original 26 weightings plus ``dense_points`` values of lambda2
    evenly spaced in [0, dense_max] (Fig. 4's range), without duplicates."""
    if dense_points < 0:
        raise ValueError("dense_points must be >= 0")
    values = list(ORIGINAL_GRID) if include_original else []
    values += [float(v) for v in np.linspace(0.0, dense_max, dense_points)] if dense_points else []
    unique = list(dict.fromkeys(round(v, 12) for v in values))
    return [weighted_sum_run(v, **run_kwargs) for v in unique]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run (or resume) a sweep of the paper's experiments into the cache.")
    parser.add_argument("experiment", choices=["smgd", "grid"])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--optimizers", nargs="*")
    parser.add_argument("--itp", default="both", choices=list(ITP_CHOICES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--protocol", default="faithful")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th config starting at i (one per process)")
    args = parser.parse_args(argv)
    if args.experiment == "smgd":
        configs = smgd_comparison(args.dataset, args.optimizers, args.itp, args.epochs, tuple(args.seeds),
                                  train_subset=args.train_subset, protocol=args.protocol)
    else:
        configs = weighted_sum_grid(seed=args.seeds[0], train_subset=args.train_subset, protocol=args.protocol)
    index, count = (int(v) for v in args.shard.split("/"))
    run_sweep(configs[index::count])


if __name__ == "__main__":
    main()

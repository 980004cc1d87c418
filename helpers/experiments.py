"""The paper's experiments as lists of ``RunConfig``: one definition shared by the notebooks
and by long background sweeps (``python -m helpers.experiments smgd --dataset mnist``).
"""

from __future__ import annotations

import argparse
import itertools

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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run (or resume) a sweep of the paper's experiments into the cache.")
    parser.add_argument("experiment", choices=["smgd"])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--optimizers", nargs="*")
    parser.add_argument("--itp", default="both", choices=list(ITP_CHOICES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--protocol", default="faithful")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th config starting at i (one per process)")
    args = parser.parse_args(argv)
    configs = smgd_comparison(args.dataset, args.optimizers, args.itp, args.epochs, tuple(args.seeds),
                              train_subset=args.train_subset, protocol=args.protocol)
    index, count = (int(v) for v in args.shard.split("/"))
    run_sweep(configs[index::count])


if __name__ == "__main__":
    main()

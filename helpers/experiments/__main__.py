"""``python -m helpers.experiments {smgd,grid,ablation,knees} ...``: run (or resume) a sweep of the
paper's experiments into the cache, e.g. in a background process or one shard per process.
"""

from __future__ import annotations

import argparse

from ..sweep import run_sweep
from .smgd import ITP_CHOICES, lr_ablation, lr_ablation_followup, smgd_comparison
from .weighted_sum import SEARCH_METHODS, KneeSearch, weighted_sum_grid


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m helpers.experiments",
                                     description="Run (or resume) a sweep of the paper's experiments into the cache.")
    parser.add_argument("experiment", choices=["smgd", "grid", "ablation", "knees"])
    parser.add_argument("--methods", nargs="*", default=list(SEARCH_METHODS), help="knees: the searches to run")
    parser.add_argument("--select-on", default="test", choices=["test", "val"])
    parser.add_argument("--knee-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--optimizers", nargs="*")
    parser.add_argument("--itp", default="both", choices=list(ITP_CHOICES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--protocol", default="faithful")
    parser.add_argument("--scalarization", default="separate", choices=["separate", "joint"])
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th config starting at i (one per process)")
    args = parser.parse_args(argv)
    if args.experiment == "smgd":
        configs = smgd_comparison(args.dataset, args.optimizers, args.itp, args.epochs, tuple(args.seeds),
                                  train_subset=args.train_subset, protocol=args.protocol)
    elif args.experiment == "ablation":  # every rate on the first seed, then the closest rates on every seed
        first = run_sweep(lr_ablation(seeds=tuple(args.seeds[:1]), epochs=args.epochs or 30,
                                      train_subset=args.train_subset))
        _, configs = lr_ablation_followup(first, args.seeds, epochs=args.epochs or 30, train_subset=args.train_subset)
    elif args.experiment == "knees":  # whole searches, then their knees: one process per search
        search = KneeSearch(seed=args.seeds[0], train_subset=args.train_subset, select_on=args.select_on,
                            protocol=args.protocol, scalarization=args.scalarization)
        found = {method: search.search(method) for method in args.methods}
        _, knee_runs = search.knees(found)
        search.knee_seeds(knee_runs, seeds=tuple(args.knee_seeds))
        return
    else:
        configs = weighted_sum_grid(seed=args.seeds[0], train_subset=args.train_subset, protocol=args.protocol,
                                    scalarization=args.scalarization)
    index, count = (int(v) for v in args.shard.split("/"))
    run_sweep(configs[index::count])


if __name__ == "__main__":
    main()

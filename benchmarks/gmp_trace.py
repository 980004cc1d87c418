"""Where do our GMP and tfmot's part ways? Both runs of one ``frontier.py`` configuration, traced.

Runs ``frontier.our_gmp`` and tfmot's GMP (worker process) with the benchmark's fair settings for
one seed and final sparsity, each recording the kept count of every dense kernel after every batch
and the masked kernels after every epoch, then reports the first epoch whose kernels differ, the
first mask update whose kept counts differ, and there the float32 value of ``size * (1 - s)`` that
tfmot rounds (a value within a few 1e-4 of .5 is a float32 knife edge: one ulp of ``s`` flips it).

    python benchmarks/gmp_trace.py --seed 2 --sparsity 0.98072 [--epochs 30] [--out /tmp/gmp-trace]

Takes two GMP runs (about 6 minutes on one core). Nothing is cached or written under results/.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import frontier
import numpy as np
from common import gmp_end_step, run_tfmot_worker

from helpers import data as data_lib
from helpers import pruning


def first_differences(ours_prefix, tfmot_prefix, epochs, sizes, final_sparsity, end_step):
    """``(first epoch with different kernels or None, first differing update or None)``."""
    epoch = next((e for e in range(1, epochs + 1)
                  if any(not np.array_equal(np.load(f"{ours_prefix}-{e:02d}.npz")[name],
                                            np.load(f"{tfmot_prefix}-{e:02d}.npz")[name]) for name in sizes)), None)
    ours, theirs = np.load(f"{ours_prefix}-kept.npy"), np.load(f"{tfmot_prefix}-kept.npy")
    rows = np.flatnonzero(np.any(ours != theirs, axis=1))
    if not len(rows):
        return epoch, None
    step = int(rows[0]) + 1  # batch ends, counted from 1 like tfmot's pruning_step
    s = pruning.polynomial_sparsity(step, 0.0, final_sparsity, 0, end_step)
    layers = [(name, size, int(ours[step - 1, i]), int(theirs[step - 1, i]),
               float(np.float32(size) * (np.float32(1) - np.float32(s))))
              for i, (name, size) in enumerate(sizes.items()) if ours[step - 1, i] != theirs[step - 1, i]]
    return epoch, {"step": step, "sparsity": s, "layers": layers}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--sparsity", type=float, default=0.98072)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=None, help="folder for the traces (default: a temporary one)")
    args = parser.parse_args(argv)
    folder = Path(args.out or tempfile.mkdtemp(prefix="gmp-trace-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(final_sparsity=args.sparsity, epochs=args.epochs, seed=args.seed, **frontier.FAIR)
    ours = frontier.our_gmp(trace=str(folder / "ours"), **config)
    frontier.save_initial_weights(folder / "init.npz", args.seed)
    theirs = run_tfmot_worker("gmp", initial_weights=str(folder / "init.npz"), trace=str(folder / "tfmot"), **config)
    model = frontier.lenet5("multi", seed=args.seed)
    sizes = {layer.name: int(np.prod(layer.kernel.shape)) for layer in frontier.dense_layers(model)}
    end_step = gmp_end_step(args.epochs, data_lib.TRAIN_SIZES["mnist"])  # our_gmp's defaults: batch 32, 70%
    epoch, update = first_differences(folder / "ours", folder / "tfmot", args.epochs, sizes, args.sparsity, end_step)
    print(f"test accuracy: ours {ours['test_acc']:.4f}, tfmot {theirs['test_acc']:.4f}; traces in {folder}")
    print("kernels identical after every epoch" if epoch is None else f"kernels first differ after epoch {epoch}")
    if update is None:
        print("kept counts identical at every step")
    else:
        print(f"kept counts first differ at step {update['step']} (s = {update['sparsity']!r}):")
        for name, size, a, b, product in update["layers"]:
            print(f"  {name}: ours keep {a}, tfmot {b} of {size}; float32 size * (1 - s) = {product!r}")


if __name__ == "__main__":
    main()

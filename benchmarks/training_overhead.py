"""Benchmark 1: what intra-training pruning costs per epoch, against plain Keras and tfmot.

LeNet-5 (the paper's variant) on MNIST, batch 32, one process per framework, the first epoch
(tracing) excluded, the median of ``--epochs`` timed epochs reported. Keras 3 in this process:
plain Adam / SGD, the same with our in-graph ITP constraint, ITP the original way (a callback
doing get_weights/set_weights every batch), and our MAdam / SMGD with and without ITP. tf_keras in
a separate process (``tfmot_worker.py``): plain Adam and tfmot ``prune_low_magnitude`` on the dense
layers with ``PolynomialDecay`` at frequency 1 (every batch, like ITP) and at its default 100.

Writes ``results/benchmarks/training_overhead.csv``:
``method,framework,seconds_per_epoch,ratio_to_plain,plain`` (``plain``: the run it is divided by,
the same framework and base optimizer), plus the minimum-based ones and every epoch's seconds.
Within a framework the methods take turns epoch by epoch.

    python benchmarks/training_overhead.py [--epochs 3] [--train-subset N]
"""

from __future__ import annotations

import argparse
import time

from common import median, run_tfmot_worker, write_csv

from helpers.runtime import quiet_import

quiet_import()
import keras  # noqa: E402
import numpy as np  # noqa: E402

from helpers import data as data_lib  # noqa: E402
from helpers.models import dense_layers, lenet5  # noqa: E402
from helpers.pruning import DEFAULT_THRESHOLD, enable_itp  # noqa: E402
from helpers.run_config import RunConfig, make_optimizer  # noqa: E402

# method -> (base optimizer of RunConfig, ITP mode)
KERAS3_METHODS = {
    "adam": ("adam", None), "adam+itp": ("adam", "constraint"), "adam+itp-callback": ("adam", "callback"),
    "sgd": ("sgd", None), "sgd+itp": ("sgd", "constraint"),
    "madam": ("madam", None), "madam+itp": ("madam", "constraint"),
    "smgd": ("smgd", None), "smgd+itp": ("smgd", "constraint"),
}
PLAIN = {"adam": "adam", "sgd": "sgd", "madam": "adam", "smgd": "sgd"}


class CallbackITP(keras.callbacks.Callback):
    """ITP as the original code does it: read every dense weight back to numpy after each batch,
    zero the small ones, write them back."""

    def __init__(self, layers, threshold=DEFAULT_THRESHOLD):
        super().__init__()
        self.layers, self.threshold = layers, threshold

    def on_train_batch_end(self, batch, logs=None):
        for layer in self.layers:
            weights = layer.get_weights()
            layer.set_weights([np.where(np.abs(w) > self.threshold, w, 0.0) for w in weights])


def keras3_model(method, data):
    """LeNet-5 compiled for ``method``, plus the callbacks that method needs."""
    base, itp = KERAS3_METHODS[method]
    config = RunConfig(dataset="mnist", optimizer=base, itp=itp is not None, epochs=1,
                       lr_schedule="constant").resolved()
    model = lenet5("multi" if config.is_multi else "baseline", seed=0, lambda_dense=0.0)
    callbacks = []
    if itp == "constraint":
        enable_itp(model)
    elif itp == "callback":
        callbacks.append(CallbackITP(dense_layers(model)))
    optimizer = make_optimizer(config, model, steps_per_epoch=int(np.ceil(len(data.x_train) / 32)))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, callbacks


def interleaved_epoch_times(methods, epochs, data):
    """Seconds of each timed epoch of every method, the methods taking turns epoch by epoch, so a
    slow phase of the machine (other tenants, memory reclaim) hits every method alike instead of
    whichever one happens to run then. One untimed warm-up epoch each (tracing)."""
    runs = {method: keras3_model(method, data) for method in methods}
    times = {method: [] for method in methods}
    for round_ in range(epochs + 1):
        for method, (model, callbacks) in runs.items():
            start = time.perf_counter()
            model.fit(data.x_train, data.y_train, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
            if round_:
                times[method].append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per method (plus one warm-up)")
    parser.add_argument("--train-subset", type=int, default=None, help="MNIST training images (default: all)")
    parser.add_argument("--skip-tfmot", action="store_true")
    args = parser.parse_args(argv)
    data = data_lib.load_dataset("mnist", train_subset=args.train_subset)
    epoch_times = {}
    for method, times in interleaved_epoch_times(list(KERAS3_METHODS), args.epochs, data).items():
        epoch_times[method, "keras3"] = times
        print(f"keras3  {method:18s} {median(times):.2f} s/epoch  {[round(t, 2) for t in times]}", flush=True)
    if not args.skip_tfmot:
        out = run_tfmot_worker("overhead", epochs=args.epochs, train_subset=args.train_subset)
        for name, times in out["epoch_seconds"].items():
            epoch_times[name, "tf_keras"] = times
            print(f"tf_keras {name:17s} {median(times):.2f} s/epoch  {[round(t, 2) for t in times]}", flush=True)
    rows = []
    for (method, framework), times in epoch_times.items():
        plain = PLAIN[KERAS3_METHODS[method][0]] if framework == "keras3" else "adam"
        reference = epoch_times[plain, framework]
        # The median is the headline; the minimum (timeit's choice) is the least disturbed by the
        # occasional 2x-slow epoch this shared machine produces.
        rows.append({"method": method, "framework": framework, "seconds_per_epoch": round(median(times), 4),
                     "ratio_to_plain": round(median(times) / median(reference), 4), "plain": plain,
                     "min_seconds_per_epoch": round(min(times), 4),
                     "ratio_to_plain_min": round(min(times) / min(reference), 4),
                     "epoch_seconds": " ".join(f"{t:.3f}" for t in times)})
    path = write_csv("training_overhead.csv", rows)
    print(f"\nwrote {path}")
    for row in rows:
        print(f"{row['framework']:9s} {row['method']:18s} {row['seconds_per_epoch']:7.2f} s  x{row['ratio_to_plain']:.2f} "
              f"vs {row['plain']}")


if __name__ == "__main__":
    main()

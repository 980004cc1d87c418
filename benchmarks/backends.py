"""Benchmark 4: the optimizers and ITP run unchanged on the JAX backend and agree with TensorFlow.

For each backend (a separate process with ``KERAS_BACKEND`` set) LeNet-5 starts from the *same*
initial weights (written by the TensorFlow process, loaded by the others: the backends draw
different numbers from the same seed), trains ``--epochs`` epochs on the first ``--train-subset``
MNIST images in a fixed order (batch 32, constant learning rate, ITP on) with each optimizer, and
reports the final weights, test accuracy and the seconds of the last epoch. The agreement is the
largest absolute weight difference, the number of dense weights whose zero/nonzero state differs
(ITP's decisions), and the test-accuracy difference.

Writes ``results/benchmarks/backends.csv``.

    python benchmarks/backends.py [--backends tensorflow jax] [--epochs 2] [--train-subset 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPTIMIZERS = ("madam", "smgd", "mrmsprop", "adam")


def worker(args):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers.runtime import quiet_import

    quiet_import()
    import keras
    import numpy as np

    from helpers import data as data_lib
    from helpers.models import lenet5
    from helpers.pruning import enable_itp
    from helpers.run_config import RunConfig, make_optimizer

    data = data_lib.load_dataset("mnist", train_subset=args.train_subset)
    out = {"backend": keras.backend.backend(), "keras": keras.__version__, "runs": {}}
    device = "cpu"
    if keras.backend.backend() == "jax":
        import jax
        device = jax.devices()[0].platform
    out["device"] = device
    for name in args.optimizers:
        config = RunConfig(dataset="mnist", optimizer=name, itp=True, epochs=args.epochs, lr_schedule="constant").resolved()
        model = lenet5("multi" if config.is_multi else "baseline", seed=0, lambda_dense=config.lambda_dense or 0.0)
        init = Path(args.workdir) / "lenet5_init.weights.h5"
        if not init.exists():
            model.save_weights(init)
        model.load_weights(init)
        enable_itp(model)
        optimizer = make_optimizer(config, model, steps_per_epoch=int(np.ceil(len(data.x_train) / 32)))
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        times = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            model.fit(data.x_train, data.y_train, batch_size=32, epochs=1, shuffle=False, verbose=0)
            times.append(time.perf_counter() - start)
        weights = [np.asarray(w) for w in model.get_weights()]
        np.savez(Path(args.workdir) / f"{out['backend']}-{name}.npz", *weights)
        accuracy = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))
        out["runs"][name] = {"test_acc": accuracy, "last_epoch_seconds": times[-1], "first_epoch_seconds": times[0]}
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="*", default=["tensorflow", "jax"])
    parser.add_argument("--optimizers", nargs="*", default=list(OPTIMIZERS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=4096)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    import numpy as np

    from common import write_csv

    if args.backends[0] != "tensorflow":
        raise SystemExit("the first backend must be tensorflow: it writes the shared initial weights")
    with tempfile.TemporaryDirectory() as workdir:
        results = {}
        for backend in args.backends:
            command = [sys.executable, __file__, "--worker", "--workdir", workdir, "--epochs", str(args.epochs),
                       "--train-subset", str(args.train_subset), "--optimizers", *args.optimizers]
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
            results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{backend}: done on {results[backend]['device']}", flush=True)
        rows = []
        for name in args.optimizers:
            reference = np.load(Path(workdir) / f"tensorflow-{name}.npz")
            for backend in args.backends:
                run = results[backend]["runs"][name]
                weights = np.load(Path(workdir) / f"{backend}-{name}.npz")
                diffs = [np.abs(weights[k] - reference[k]).max() for k in reference.files]
                # dense kernels and biases are the arrays ITP acts on: the last six of LeNet-5
                pattern = sum(int(np.sum((weights[k] == 0) != (reference[k] == 0))) for k in reference.files[-6:])
                rows.append({"optimizer": name, "backend": backend, "device": results[backend]["device"],
                             "epochs": args.epochs, "train_images": args.train_subset,
                             "test_acc": run["test_acc"],
                             "test_acc_diff_vs_tf": run["test_acc"] - results["tensorflow"]["runs"][name]["test_acc"],
                             "max_abs_weight_diff_vs_tf": float(max(diffs)), "itp_pattern_mismatches": pattern,
                             "last_epoch_seconds": run["last_epoch_seconds"]})
                print(f"{name:9s} {backend:10s} acc {run['test_acc']:.4f}  max|dw| {max(diffs):.2e}  "
                      f"zero-pattern mismatches {pattern}  epoch {run['last_epoch_seconds']:.2f} s", flush=True)
    print(f"\nwrote {write_csv('backends.csv', rows)}")


if __name__ == "__main__":
    main()

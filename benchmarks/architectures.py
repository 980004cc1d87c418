"""Benchmark 6: structured pruning of models nobody here wrote, compacted exactly and timed.

keras.applications ResNet50, MobileNetV2, EfficientNetB0, DenseNet121 and VGG16 (weights=None,
10 classes, 64x64x3 inputs) and a Transformer encoder block (MultiHeadAttention + LayerNorm +
FFN, 64 tokens of width 256, 8 heads, FFN 1024). For each amount (30% and 50%):

* masks: CNNs: global L1 filter pruning through the dependency graph (``masks_for(...,
  granularity="filter", scope="global")``: coupled channels of residual Adds, Concatenates,
  depthwise and BN layers ranked and removed as one group, no layer emptied); the Transformer
  block: its FFN units and its attention heads, each at that amount;
* ``compact()`` (verifying its outputs) or the reason it refused, the largest |masked -
  compacted| output difference relative to the largest |output| on a fixed batch, parameters and
  FLOPs before and after, and the latency (``predict_on_batch``) at batch 1 and 32: median of
  ``--repeats`` calls, dense and compacted interleaved call by call in one process, so both see
  the same machine; the latency ratio over the FLOP ratio (1.0: the speed-up the FLOPs promise).

Each (backend, threads) setting runs in its own process: TensorFlow at all threads and at one
thread (``taskset -c 0`` plus TensorFlow's own thread settings), JAX at all threads. The TensorFlow process writes
the weights and masks; the other processes load them, so every backend prunes the *same* model
with the *same* masks, and the JAX compacted outputs are compared with TensorFlow's.

Also (TensorFlow, all threads): ``masks_for``'s time against one ``np.partition`` over all
kernels (ResNet50, VGG16), and a masked model's ``.keras`` size and save time against the
stripped model's.

Writes ``results/benchmarks/architectures.csv``, ``masks_for_speed.csv`` and ``save_size.csv``.
Run it alone on the machine (it times):

    python benchmarks/architectures.py [--repeats 20] [--backends tensorflow jax] [--models resnet50 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("resnet50", "mobilenetv2", "efficientnetb0", "densenet121", "vgg16", "transformer_block")
AMOUNTS = (0.3, 0.5)
IMAGE = (64, 64, 3)
TOKENS, WIDTH, HEADS, FFN = 64, 256, 8, 1024
BATCHES = (1, 32)


def build(name):
    import keras

    keras.utils.set_random_seed(0)
    apps = keras.applications
    if name == "transformer_block":
        inputs = keras.Input((TOKENS, WIDTH))
        attention = keras.layers.MultiHeadAttention(HEADS, WIDTH // HEADS, name="attention")(inputs, inputs)
        x = keras.layers.LayerNormalization(name="norm1")(keras.layers.Add(name="residual1")([inputs, attention]))
        f = keras.layers.Dense(FFN, activation="gelu", name="ffn_in")(x)
        f = keras.layers.Dense(WIDTH, name="ffn_out")(f)
        x = keras.layers.LayerNormalization(name="norm2")(keras.layers.Add(name="residual2")([x, f]))
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name=name)
    constructor = {"resnet50": apps.ResNet50, "mobilenetv2": apps.MobileNetV2, "efficientnetb0": apps.EfficientNetB0,
                   "densenet121": apps.DenseNet121, "vgg16": apps.VGG16}[name]
    return constructor(weights=None, classes=10, input_shape=IMAGE)


def make_masks(model, name, amount):
    from helpers import pruning

    if name == "transformer_block":
        return {**pruning.masks_for(model, amount, importance="l1", granularity="unit"),
                **pruning.masks_for(model, amount, importance="l1", granularity="head")}
    return pruning.masks_for(model, amount, importance="l1", granularity="filter", scope="global")


def interleaved_latency(models, batch_size, repeats, shape, warmup=3):
    """Median seconds of ``predict_on_batch`` per model, the models called in turn each repeat."""
    import numpy as np

    x = np.random.default_rng(0).random((batch_size, *shape), dtype=np.float32)
    for model in models:
        for _ in range(warmup):
            model.predict_on_batch(x)
    times = [[] for _ in models]
    for _ in range(repeats):
        for model, row in zip(models, times):
            start = time.perf_counter()
            model.predict_on_batch(x)
            row.append(time.perf_counter() - start)
    return [float(np.median(row)) for row in times]


def worker(args):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.threads == 1 and os.environ.get("KERAS_BACKEND") == "jax":
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    from helpers.runtime import quiet_import

    quiet_import()
    import keras
    import numpy as np

    if keras.backend.backend() == "tensorflow" and args.threads == 1:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from helpers import pruning
    from helpers.pruning import costs

    shared = Path(args.shared)
    if args.extras:
        print(json.dumps({"masks_for_speed": masks_for_speed(), "save_size": save_size(shared)}))
        return
    backend = keras.backend.backend()
    # One JSON line per finished row: an interrupted benchmark resumes where it stopped.
    log = shared / f"{backend}-{args.threads or 'all'}.jsonl"
    done = {(r["model"], r["amount"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    for name in args.models:
        if all((name, amount) in done for amount in args.amounts):
            continue
        weights = shared / f"{name}.weights.h5"
        dense = build(name)
        if weights.exists():
            dense.load_weights(weights)
        else:
            dense.save_weights(weights)
        shape = tuple(dense.input_shape[1:])
        x = np.random.default_rng(1).standard_normal((8, *shape)).astype("float32")
        initial = dense.get_weights()
        base = {"params": costs.parameters(dense, nonzero_only=False), "flops": costs.flops(dense)}
        for amount in args.amounts:
            dense.set_weights(initial)
            masks_file = shared / f"{name}-{amount}.masks.npz"
            if masks_file.exists():
                masks = pruning.load_masks(masks_file)
            else:
                masks = make_masks(dense, name, amount)
                pruning.save_masks(masks, masks_file)
            masked = build(name)
            masked.set_weights(initial)
            pruning.apply_masks(masked, masks)
            if (name, amount) in done:
                continue
            row = {"model": name, "amount": amount, "backend": backend, "threads": args.threads or "all",
                   "params": base["params"], "flops": base["flops"]}
            start = time.perf_counter()
            try:
                small, report = pruning.compact(masked)
            except pruning.PruningError as error:
                _append(log, {**row, "compacted": False, "reason": str(error)})
                continue
            row["compact_s"] = time.perf_counter() - start
            expected, got = masked.predict_on_batch(x), small.predict_on_batch(x)
            np.save(shared / f"{name}-{amount}-{backend}.npy", got)
            row.update(compacted=True, reason="",
                       kept_whole=";".join(r["layer"] for r in report if "reason" in r),
                       max_rel_diff=float(np.abs(got - expected).max() / np.abs(expected).max()),
                       params_compact=costs.parameters(small, nonzero_only=False), flops_compact=costs.flops(small))
            row["param_ratio"] = row["params_compact"] / row["params"]
            row["flop_ratio"] = row["flops_compact"] / row["flops"]
            for batch in BATCHES:
                t_dense, t_small = interleaved_latency([masked, small], batch, args.repeats, shape)
                row[f"latency_b{batch}_dense_ms"], row[f"latency_b{batch}_compact_ms"] = 1e3 * t_dense, 1e3 * t_small
                row[f"latency_b{batch}_ratio"] = t_small / t_dense
                row[f"b{batch}_latency_over_flop_ratio"] = row[f"latency_b{batch}_ratio"] / row["flop_ratio"]
            _append(log, row)
    print(json.dumps({"rows": [json.loads(line) for line in log.read_text().splitlines()]}))


def _append(log, row):
    with open(log, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), file=sys.stderr, flush=True)


def masks_for_speed(names=("resnet50", "vgg16"), repeats=3):
    """``masks_for`` (weight granularity, per layer and global) against one ``np.partition`` over
    the same kernels: the floor of any magnitude ranking."""
    import numpy as np

    from helpers import pruning
    from helpers.layers import kernel_weights

    rows = []
    for name in names:
        model = build(name)
        kernels = [np.asarray(ref.variable).ravel() for ref in kernel_weights(model)]
        everything = np.abs(np.concatenate(kernels))
        k = everything.size // 2

        def best(f):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                f()
                times.append(time.perf_counter() - start)
            return min(times)

        partition = best(lambda: np.partition(everything, k))
        for scope in ("layer", "global"):
            seconds = best(lambda: pruning.masks_for(model, 0.5, scope=scope))
            rows.append({"model": name, "scope": scope, "weights": int(everything.size), "masks_for_s": seconds,
                         "partition_s": partition, "ratio": seconds / partition})
    return rows


def save_size(shared, names=("resnet50", "vgg16")):
    """The ``.keras`` size and save time of a model with masks attached against the stripped model."""
    from helpers import pruning

    rows = []
    for name in names:
        model = build(name)
        pruning.attach_masks(model, pruning.masks_for(model, 0.5))
        for variant, m in (("masked", model), ("stripped", pruning.strip(model))):
            path = shared / f"{name}-{variant}.keras"
            start = time.perf_counter()
            m.save(path)
            rows.append({"model": name, "variant": variant, "save_s": time.perf_counter() - start,
                         "mb": path.stat().st_size / 2**20})
            path.unlink()
        masked, stripped = rows[-2], rows[-1]
        masked["size_over_stripped"] = masked["mb"] / stripped["mb"]
        masked["time_over_stripped"] = masked["save_s"] / stripped["save_s"]
    return rows


def run_worker(backend, threads, args, shared, extras=False):
    command = [sys.executable, __file__, "--worker", "--shared", str(shared), "--threads", str(threads),
               "--repeats", str(args.repeats), "--models", *args.models, "--amounts", *map(str, args.amounts)]
    if extras:
        command.append("--extras")
    if threads == 1:
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"== {backend}, {threads or 'all'} thread(s)", flush=True)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {backend} worker failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--amounts", nargs="+", type=float, default=list(AMOUNTS))
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--threads", nargs="+", type=int, default=[0, 1], help="0: all threads")
    parser.add_argument("--output", default="architectures.csv")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shared", help=argparse.SUPPRESS)
    parser.add_argument("--work", help="folder for weights, masks and finished rows (default: a temporary folder "
                                       "named for the arguments; removed when the benchmark is done)")
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        return worker(args)
    if args.backends[0] != "tensorflow":
        raise SystemExit("the first backend must be tensorflow: it writes the weights and masks the others load")
    import numpy as np

    from common import write_csv

    # Weights, masks, outputs and finished rows live here until the whole benchmark is done, so a
    # rerun with the same arguments after an interruption resumes (the folder is named for them).
    digest = hashlib.sha256(json.dumps(vars(args), sort_keys=True).encode()).hexdigest()[:12]
    shared = Path(args.work or Path(tempfile.gettempdir()) / f"mo-pruning-architectures-{digest}")
    shared.mkdir(parents=True, exist_ok=True)
    rows, extras = [], {}
    for backend in args.backends:
        # JAX at all threads only: its compile times make a second, single-thread pass long
        for threads in (args.threads if backend == "tensorflow" else [0]):
            rows += run_worker(backend, threads, args, shared)["rows"]
    if args.output == "architectures.csv":  # the extras belong to the real table only
        extras = run_worker("tensorflow", 0, args, shared, extras=True)
    reference = {}
    for row in rows:  # every backend's compacted outputs against TensorFlow's (same weights, same masks)
        if row.get("compacted"):
            out = np.load(shared / f"{row['model']}-{row['amount']}-{row['backend']}.npy")
            ref = reference.setdefault((row["model"], row["amount"]),
                                       np.load(shared / f"{row['model']}-{row['amount']}-tensorflow.npy"))
            row["max_rel_diff_vs_tensorflow"] = float(np.abs(out - ref).max() / np.abs(ref).max())
    shutil.rmtree(shared, ignore_errors=True)  # done: nothing left to resume
    columns = list(dict.fromkeys(k for row in rows for k in row))
    rounded = [{k: (round(row[k], 6) if isinstance(row.get(k), float) else row.get(k, "")) for k in columns}
               for row in rows]
    print(f"wrote {write_csv(args.output, rounded)}")
    for name, table in extras.items():
        table = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in table]
        columns = list(dict.fromkeys(k for row in table for k in row))
        print(f"wrote {write_csv(name + '.csv', [{k: row.get(k, '') for k in columns} for row in table])}")
    for row in rounded:
        if row["compacted"]:
            print(f"{row['model']:17s} {row['amount']:.1f} {row['backend']:10s} {str(row['threads']):>3s}  params "
                  f"x{row['param_ratio']:.3f}  FLOPs x{row['flop_ratio']:.3f}  b1 x{row['latency_b1_ratio']:.2f}  "
                  f"b32 x{row['latency_b32_ratio']:.2f} (/FLOPs {row['b32_latency_over_flop_ratio']:.2f})  "
                  f"diff {row['max_rel_diff']:.1e}")
        else:
            print(f"{row['model']:17s} {row['amount']:.1f} {row['backend']:10s} refused: {row['reason']}")


if __name__ == "__main__":
    main()

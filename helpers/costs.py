"""Cost functions of a network: parameters, FLOPs and measured latency.

Each takes a model and returns a number, so any of them (or a user's own callable) can serve as
the budget of budget-constrained pruning (notebook 08).
"""

from __future__ import annotations

import time

import numpy as np
from keras import layers as klayers

from .layers import all_layers


def parameters(model, nonzero_only=True):
    """Number of parameters (only the nonzero ones by default) of the Dense and Conv2D layers."""
    total = 0
    for layer in all_layers(model):
        if isinstance(layer, (klayers.Dense, klayers.Conv2D)):
            for weight in layer.weights:
                value = np.asarray(weight.numpy())
                total += int(np.count_nonzero(value)) if nonzero_only else value.size
    return total


def flops(model, nonzero_only=False):
    """Multiply-accumulate operations of one forward pass of one example (Dense and Conv2D).

    With ``nonzero_only`` a zero weight costs nothing (the ideal a sparse kernel could reach);
    otherwise every weight counts (what a dense kernel does).
    """
    total = 0
    for layer in all_layers(model):
        if isinstance(layer, klayers.Dense):
            kernel = np.asarray(layer.kernel.numpy())
            total += int(np.count_nonzero(kernel)) if nonzero_only else kernel.size
        elif isinstance(layer, klayers.Conv2D):
            kernel = np.asarray(layer.kernel.numpy())
            out_h, out_w = layer.output.shape[1:3]
            weights = int(np.count_nonzero(kernel)) if nonzero_only else kernel.size
            total += int(out_h) * int(out_w) * weights
    return total


def latency(model, batch_size=1, repeats=30, warmup=5, input_shape=None, seed=0):
    """Median seconds of ``model.predict_on_batch`` on random inputs (after warm-up runs)."""
    shape = (batch_size, *(input_shape or model.input_shape[1:]))
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    for _ in range(warmup):
        model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def saved_size(model, path, compress=True):
    """Bytes of the model saved in the ``.keras`` format, gzip-compressed if ``compress``."""
    import gzip
    import os

    model.save(path)
    if not compress:
        return os.path.getsize(path)
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))

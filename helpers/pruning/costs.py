"""What a network costs and how sparse it is: parameters, FLOPs, latency, saved size, sparsity.

Each cost takes a model and returns a number, so any of them (or a user's own callable) can serve
as the budget of budget-constrained pruning (notebook 08); ``ParameterFraction`` and
``FlopFraction`` (``make_cost(kind, model)``) are the two named ones, fractions of the dense
network. Every count of nonzero weights in the
package goes through ``count_nonzero``; every parameter count through ``parameters``, which
says explicitly whether biases count (``include_bias``).
"""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import layers as klayers
from keras import ops

from ..layers import PRUNABLE, all_layers, dense_layers, prunable_layers


def count_nonzero(variable):
    """Nonzero entries of a variable or array."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return int(np.count_nonzero(value))


def parameters(model, nonzero_only=True, include_bias=True, layers=None):
    """Parameters (only the nonzero ones by default) of the Dense and Conv2D layers (or of the
    prunable ``layers`` named), biases included iff ``include_bias``."""
    selected = (prunable_layers(model, layers, include_output=True) if layers is not None
                else [layer for layer in all_layers(model) if isinstance(layer, PRUNABLE)])
    total = 0
    for layer in selected:
        for weight in (layer.weights if include_bias else [layer.kernel]):
            total += count_nonzero(weight) if nonzero_only else int(np.prod(weight.shape))
    return total


def nonzero_counts(model):
    """``{layer name: (nnz kernel, nnz bias, kernel size)}`` for every Dense layer."""
    return {layer.name: (count_nonzero(layer.kernel), count_nonzero(layer.bias) if layer.use_bias else 0,
                         int(np.prod(layer.kernel.shape))) for layer in dense_layers(model)}


def flops(model, nonzero_only=False):
    """Multiply-accumulate operations of one forward pass of one example (Dense and Conv2D).

    With ``nonzero_only`` a zero weight costs nothing (the ideal a sparse kernel could reach);
    otherwise every weight counts (what a dense kernel does).
    """
    total = 0
    for layer in all_layers(model):
        if isinstance(layer, klayers.Dense):
            total += count_nonzero(layer.kernel) if nonzero_only else int(np.prod(layer.kernel.shape))
        elif isinstance(layer, klayers.Conv2D):
            out_h, out_w = layer.output.shape[1:3]
            weights = count_nonzero(layer.kernel) if nonzero_only else int(np.prod(layer.kernel.shape))
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


def sparsity(model, layers=None, include_output=True):
    """Fraction of exactly-zero kernel entries per prunable layer and overall (key ``"total"``)."""
    selected = prunable_layers(model, layers, include_output)
    zeros = {layer.name: int(np.prod(layer.kernel.shape)) - count_nonzero(layer.kernel) for layer in selected}
    sizes = {layer.name: int(np.prod(layer.kernel.shape)) for layer in selected}
    report = {name: zeros[name] / sizes[name] for name in zeros}
    report["total"] = sum(zeros.values()) / max(1, sum(sizes.values()))
    return report


def effective_sparsity(model):
    """Fraction of kernel weights of the Dense/Conv2D layers that cannot affect the output.

    Besides exact zeros, a weight is dead if it reads a dead unit (a unit whose incoming kernel
    and bias are all zero and whose activation maps 0 to 0, e.g. ReLU), or feeds a unit whose
    outgoing weights are all dead. This is why unit pruning at the same nominal k removes far more
    than weight pruning (seed 002). Only sequential chains of Dense layers are analysed exactly;
    other layers count their exact zeros.
    """
    layers = [layer for layer in all_layers(model) if isinstance(layer, PRUNABLE)]
    alive = [layer.kernel.numpy() != 0 for layer in layers]
    dense_chain = all(isinstance(layer, keras.layers.Dense) for layer in layers)
    if dense_chain:
        changed = True
        while changed:
            changed = False
            for i, layer in enumerate(layers):
                bias = layer.bias.numpy() if layer.use_bias else np.zeros(alive[i].shape[1])
                zero_maps_to_zero = not np.any(ops.convert_to_numpy(layer.activation(ops.zeros((1, 2)))))
                dead_units = ~alive[i].any(axis=0) & (bias == 0) & zero_maps_to_zero
                if i + 1 < len(layers) and dead_units.any() and alive[i + 1][dead_units].any():
                    alive[i + 1][dead_units] = False
                    changed = True
                if i > 0:
                    silent = ~alive[i].any(axis=1)  # inputs no later weight reads
                    if silent.any() and alive[i - 1][:, silent].any():
                        alive[i - 1][:, silent] = False
                        changed = True
    total = sum(a.size for a in alive)
    return 1.0 - sum(int(a.sum()) for a in alive) / total


# Budget costs: fractions of the dense network, for budget-constrained pruning (notebook 08).


class ParameterFraction:
    """Fraction of the prunable kernels' weights that are nonzero (the seed's cost, /100)."""

    kind = "parameters"

    def __init__(self, model, layers=None):
        self.layers = None if layers is None else list(layers)
        self.total = parameters(model, nonzero_only=False, include_bias=False, layers=self.layers)

    def __call__(self, model):
        return parameters(model, include_bias=False, layers=self.layers) / self.total


class FlopFraction:
    """Multiply-accumulates of one forward pass with zero weights skipped, as a fraction of the
    dense network's (the ideal a sparse kernel could reach; ``flops``)."""

    kind = "flops"

    def __init__(self, model):
        self.total = flops(model, nonzero_only=False)

    def __call__(self, model):
        return flops(model, nonzero_only=True) / self.total


COST_KINDS = {"parameters": ParameterFraction, "flops": FlopFraction}


def make_cost(kind, model):
    """The named cost function (``"parameters"`` or ``"flops"``) measured against ``model``."""
    if kind not in COST_KINDS:
        raise ValueError(f"budget kind must be one of {sorted(COST_KINDS)} (or pass your own callable), got {kind!r}")
    return COST_KINDS[kind](model)

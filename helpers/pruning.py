"""Intra-training pruning (ITP, REPRODUCTION_NOTES.md §3) and pruning measurements.

ITP sets every entry of every Dense kernel *and* bias with ``|w| <= threshold`` to exactly
zero, once before training and after every optimizer update; conv and BN weights are never
touched. The original did this in a Python callback with get/set_weights every batch (host
round-trips, REPRODUCTION_NOTES.md, B23). Here it is a Keras variable constraint: Keras 3 applies constraints
inside the compiled train step right after the optimizer update, so ITP costs one
elementwise ``where`` per dense variable and works with any optimizer and plain ``model.fit``.

There is no persistent mask, as in the original: a pruned weight may regrow if a single
update moves it above the threshold (possible with momentum); optimizer slots are not reset.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .models import dense_layers
from .validation import check_bool, check_float

DEFAULT_THRESHOLD = 1e-3


@keras.saving.register_keras_serializable(package="helpers")
class ThresholdPrune(keras.constraints.Constraint):
    """Constraint ``w -> 0 where |w| <= threshold`` (exact zeros; strict ``>`` keeps a weight).

    A non-finite weight is kept as it is (``NaN <= t`` is false), never turned into a pruned
    zero: a diverged run must stay visibly diverged so the runner records it as failed.
    """

    def __init__(self, threshold=DEFAULT_THRESHOLD):
        self.threshold = check_float("threshold", threshold, minimum=0.0)

    def __call__(self, w):
        w = ops.convert_to_tensor(w)  # a Variable on some backends (JAX)
        return ops.where(ops.less_equal(ops.abs(w), self.threshold), ops.zeros_like(w), w)

    def get_config(self):
        return {"threshold": self.threshold}


def enable_itp(model, threshold=DEFAULT_THRESHOLD, prune_now=True):
    """Switch ITP on for every Dense layer of ``model`` (kernels and biases).

    ``prune_now`` applies the initial prune that the original does right after compile.
    Returns the constraint. A train step Keras already traced is dropped, so the next ``fit``
    traces it again with the constraint.
    """
    constraint = ThresholdPrune(threshold)
    prune_now = check_bool("prune_now", prune_now)
    for layer in dense_layers(model):
        layer.kernel_constraint = constraint
        layer.kernel.constraint = constraint
        if layer.use_bias:
            layer.bias_constraint = constraint
            layer.bias.constraint = constraint
    if prune_now:
        apply_threshold(model, threshold)
    retrace(model)
    return constraint


def disable_itp(model):
    """Switch ITP off; the traced train step (which applies the constraints) is dropped too."""
    for layer in dense_layers(model):
        layer.kernel_constraint = layer.kernel.constraint = None
        if layer.use_bias:
            layer.bias_constraint = layer.bias.constraint = None
    retrace(model)


def retrace(model):
    """Keras reads variable constraints when it traces the train step: after any change of a
    constraint, drop the traced step so the next ``fit`` / ``train_on_batch`` traces it again."""
    if getattr(model, "train_function", None) is not None:
        model.train_function = None


def apply_threshold(model, threshold=DEFAULT_THRESHOLD):
    """Prune every Dense kernel and bias of ``model`` once, now."""
    constraint = ThresholdPrune(threshold)
    for layer in dense_layers(model):
        for variable in ([layer.kernel, layer.bias] if layer.use_bias else [layer.kernel]):
            variable.assign(constraint(variable))


def nonzero_counts(model):
    """``{layer name: (nnz kernel, nnz bias, kernel size)}`` for every Dense layer."""
    counts = {}
    for layer in dense_layers(model):
        kernel = layer.kernel.numpy()
        bias_nnz = int(np.count_nonzero(layer.bias.numpy())) if layer.use_bias else 0
        counts[layer.name] = (int(np.count_nonzero(kernel)), bias_nnz, int(kernel.size))
    return counts

"""Intra-training pruning (ITP, REPRODUCTION_NOTES.md §3) and pruning measurements.

ITP sets every entry of every Dense kernel *and* bias with ``|w| <= threshold`` to exactly
zero, once before training and after every optimizer update; conv and BN weights are never
touched. The original did this in a Python callback with get/set_weights every batch (host
round-trips, REPRODUCTION_NOTES.md, B23). Here it is a Keras variable constraint: Keras 3 applies constraints
inside the compiled train step right after the optimizer update, so ITP costs one
elementwise ``where`` per dense variable and works with any optimizer and plain ``model.fit``.

There is no persistent mask, as in the original: a pruned weight may regrow if a single
update moves it above the threshold (possible with momentum); optimizer slots are not reset.
The threshold lives in the package's one ``PruningConstraint`` (``masks``), so masks attached
before or after ITP are kept alongside it.
"""

from __future__ import annotations

import keras

from ..layers import weights as weight_table
from ..validation import check_bool
from .masks import PruningConstraint, retrace, set_constraint

DEFAULT_THRESHOLD = 1e-3


def _dense_weights(model):
    for ref in weight_table(model).values():
        if isinstance(ref.layer, keras.layers.Dense) and ref.attribute in ("kernel", "bias"):
            yield ref


def enable_itp(model, threshold=DEFAULT_THRESHOLD, prune_now=True):
    """Switch ITP on for every Dense layer of ``model`` (kernels and biases).

    ``prune_now`` applies the initial prune that the original does right after compile.
    Returns the (shared) constraint of the unmasked variables; a masked variable keeps its mask
    and gets the threshold too. The train step is retraced.
    """
    constraint = PruningConstraint(threshold)
    prune_now = check_bool("prune_now", prune_now)
    for ref in _dense_weights(model):
        current = ref.variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            current.threshold = constraint.threshold
            set_constraint(ref, current)
        else:
            set_constraint(ref, constraint)
    if prune_now:
        apply_threshold(model, threshold)
    retrace(model)
    return constraint


def disable_itp(model):
    """Switch ITP off (attached masks stay); the train step is retraced."""
    for ref in _dense_weights(model):
        current = ref.variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            current.threshold = None
        else:
            set_constraint(ref, None)
    retrace(model)


def apply_threshold(model, threshold=DEFAULT_THRESHOLD):
    """Prune every Dense kernel and bias of ``model`` once, now."""
    constraint = PruningConstraint(threshold)
    for ref in _dense_weights(model):
        ref.variable.assign(constraint(ref.variable))

"""Masks and the one pruning constraint.

A pruning decision is a dict from variable path (``"hidden1/kernel"``) to a boolean numpy array
of the variable's shape (True = kept). ``apply_masks`` zeroes the pruned entries once;
``attach_masks`` also installs a ``PruningConstraint`` on each masked variable, which Keras 3
applies in-graph right after every optimizer update, so the masks stay applied while the network
is retrained with plain ``model.fit``.

``PruningConstraint`` is the only constraint this package installs: it holds an optional ITP
threshold (``w -> 0 where |w| <= threshold``, see ``itp``) and an optional mask (``w -> w *
mask``), applied in that order. So ITP and masks share a variable without replacing each other:
``attach_masks`` after ``enable_itp`` keeps the threshold, ``detach_masks`` removes only the
mask, ``disable_itp`` only the threshold. Every one of them drops the traced train step
(``retrace``), since Keras reads constraints when it traces it.

The constraint is also set as the owning layer's ``kernel_constraint`` / ``bias_constraint`` and
is registered with Keras, so masks and thresholds survive a ``.keras`` save and load (the loading
process must import ``helpers``; ``strip`` gives a model that does not need it).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..layers import all_layers
from ..validation import check_float

WEIGHT_ATTRIBUTES = ("kernel", "bias")


@keras.saving.register_keras_serializable(package="helpers")
class PruningConstraint(keras.constraints.Constraint):
    """``w -> where(|w| <= threshold, 0, w) * mask``; either part may be absent (None).

    The threshold part keeps a non-finite weight as it is (``NaN <= t`` is false), never turning
    it into a pruned zero: a diverged run must stay visibly diverged. The mask lives in a
    non-trainable variable, so a callback can change it (``set_mask``) without a retrace.
    """

    def __init__(self, threshold=None, mask=None):
        self.threshold = None if threshold is None else check_float("threshold", threshold, minimum=0.0)
        self.mask = None
        if mask is not None:
            self.set_mask(mask)

    @property
    def empty(self):
        return self.threshold is None and self.mask is None

    def __call__(self, w):
        w = ops.convert_to_tensor(w)  # a Variable on some backends (JAX)
        if self.threshold is not None:
            w = ops.where(ops.less_equal(ops.abs(w), self.threshold), ops.zeros_like(w), w)
        if self.mask is not None:
            w = ops.multiply(w, ops.cast(self.mask, w.dtype))
        return w

    def set_mask(self, mask):
        """Set (or replace, in place) the mask; ``None`` removes it (the caller retraces)."""
        if mask is None:
            self.mask = None
        elif self.mask is None:
            self.mask = keras.Variable(np.asarray(mask, dtype="float32"), trainable=False, dtype="float32",
                                       name="prune_mask")
        else:
            self.mask.assign(np.asarray(mask, dtype="float32"))

    def get_config(self):
        return {"threshold": self.threshold,
                "mask": None if self.mask is None else np.asarray(self.mask.numpy()).tolist()}


def retrace(model):
    """Keras reads variable constraints when it traces the train step: after any change of a
    constraint, drop the traced step so the next ``fit`` / ``train_on_batch`` traces it again."""
    if getattr(model, "train_function", None) is not None:
        model.train_function = None


def weight_owners(model):
    """``{variable path: (variable, layer, attribute)}`` for the kernel and bias of every layer."""
    owners = {}
    for layer in all_layers(model):
        for attribute in WEIGHT_ATTRIBUTES:
            variable = getattr(layer, attribute, None) if layer.built else None
            if isinstance(variable, keras.Variable):
                owners[variable.path] = (variable, layer, attribute)
    return owners


def set_constraint(variable, layer, attribute, constraint):
    """Install ``constraint`` (or None) on the variable and, for its layer's config, the layer."""
    variable.constraint = constraint
    if layer is not None and hasattr(layer, f"{attribute}_constraint"):
        setattr(layer, f"{attribute}_constraint", constraint)


def _variables(model, masks):
    owners = weight_owners(model)
    for v in model.weights:
        owners.setdefault(v.path, (v, None, None))
    missing = set(masks) - set(owners)
    if missing:
        raise ValueError(f"masks name variables the model does not have: {sorted(missing)}")
    for path, mask in masks.items():
        if tuple(np.shape(mask)) != tuple(owners[path][0].shape):
            raise ValueError(f"mask for {path} has shape {np.shape(mask)}, variable has {tuple(owners[path][0].shape)}")
    return owners


def apply_masks(model, masks):
    """Zero the pruned entries of ``model`` in place (once)."""
    owners = _variables(model, masks)
    for path, mask in masks.items():
        variable = owners[path][0]
        variable.assign(np.where(mask, variable.numpy(), 0.0).astype(variable.dtype))


def attach_masks(model, masks):
    """Apply ``masks`` and keep them applied during retraining (a ``PruningConstraint`` per variable).

    A variable that already has one (ITP's threshold, or an earlier mask) keeps it and gets the
    new mask in place. Returns ``{path: PruningConstraint}``; the train step is retraced.
    """
    apply_masks(model, masks)
    owners = _variables(model, masks)
    constraints = {}
    for path, mask in masks.items():
        variable, layer, attribute = owners[path]
        current = variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            current.set_mask(mask)
        else:
            threshold = current.threshold if isinstance(current, PruningConstraint) else None
            current = PruningConstraint(threshold, mask)  # a shared ITP constraint is not changed
            set_constraint(variable, layer, attribute, current)
        constraints[path] = current
    retrace(model)
    return constraints


def detach_masks(model):
    """Remove every mask (an ITP threshold stays); the train step is retraced."""
    for variable, layer, attribute in _variables(model, {}).values():
        current = variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            kept = PruningConstraint(current.threshold) if current.threshold is not None else None
            set_constraint(variable, layer, attribute, kept)
    retrace(model)


def current_masks(model):
    """The masks attached to ``model`` now, ``{path: boolean array}``."""
    return {path: np.asarray(v.constraint.mask.numpy()) != 0 for path, (v, _, _) in _variables(model, {}).items()
            if isinstance(v.constraint, PruningConstraint) and v.constraint.mask is not None}


def _from_helpers(obj):
    return obj is not None and type(obj).__module__.split(".")[0] == "helpers"


def strip(model):
    """A plain Keras copy of ``model`` (same weights and outputs) without this package's
    constraints or regularizers, like tfmot's ``strip_pruning``: it saves to a ``.keras`` file
    that loads in a process that never imports ``helpers``. Masked weights stay zero (they are
    zero in the weights); training the copy does not keep them zero.
    """

    def clean(layer):
        config = layer.get_config()
        for key in config:
            if key.endswith(("_constraint", "_regularizer")) and _from_helpers(getattr(layer, key, None)):
                config[key] = None
        return type(layer).from_config(config)

    stripped = keras.models.clone_model(model, clone_function=clean)
    stripped.set_weights(model.get_weights())
    return stripped

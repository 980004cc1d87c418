"""Masks and the one pruning constraint.

A pruning decision is a dict from weight key (``"hidden1/kernel"``; unique and reload-stable,
``helpers.layers.weights``; Keras' ``variable.path`` is accepted where it is unique) to a boolean
numpy array of the variable's shape (True = kept). ``apply_masks`` zeroes the pruned entries once;
``attach_masks`` also installs a ``PruningConstraint`` on each masked variable, which Keras 3
applies in-graph right after every optimizer update, so the masks stay applied while the network
is retrained with plain ``model.fit``; ``retrain_with_masks`` is that retrain (attach, fit, detach),
and ``recalibrate_batch_norm`` re-estimates BN statistics after channels were removed.

``PruningConstraint`` is the only constraint this package installs: it holds an optional ITP
threshold (``w -> 0 where |w| <= threshold``, see ``itp``) and an optional mask (``w -> w *
mask``), applied in that order. So ITP and masks share a variable without replacing each other:
``attach_masks`` after ``enable_itp`` keeps the threshold, ``detach_masks`` removes only the
mask, ``disable_itp`` only the threshold. Each drops the traced train step (``retrace``) when it
installs or removes a constraint, since Keras reads constraints when it traces it (masks replaced
in place keep TensorFlow's traced step, which reads the mask variables).

The constraint is also set as the owning layer's constraint attribute (``kernel_constraint``,
``depthwise_constraint``, ``gamma_constraint``, ...) and is registered with Keras, so masks and
thresholds survive a ``.keras`` save and load (the loading process must import ``helpers``;
``strip`` gives a model that does not need it). The mask is saved bit-packed and compressed
(one bit per weight before compression), so a masked model's file is within a few percent of
the stripped one's. Composite layers that build their sublayers from their own config
(``MultiHeadAttention``'s projections, RNN cells of a ``Bidirectional``) do not pass the
sublayers' constraints through their config: ``attach_masks`` warns, and ``save_masks`` /
``load_masks`` keep such masks beside the model file.
"""

from __future__ import annotations

import base64
import warnings
import zlib

import keras
import numpy as np
from keras import ops

from ..layers import named_layers, weights as weight_table
from ..validation import Epochs, Float, Int, Seed, check_float, validated
from .errors import PruningError


def _pack(mask):
    mask = np.asarray(mask, dtype=bool)
    packed = zlib.compress(np.packbits(mask.ravel()).tobytes(), 6)
    return {"shape": list(mask.shape), "bits": base64.b64encode(packed).decode("ascii")}


def _unpack(stored):
    if isinstance(stored, dict):
        shape = tuple(stored["shape"])
        bits = np.frombuffer(zlib.decompress(base64.b64decode(stored["bits"])), dtype=np.uint8)
        return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
    return np.asarray(stored)  # the nested lists of files saved before masks were packed


def check_mask(name, mask, shape=None):
    """A keep-mask as a boolean array: booleans, or numbers that are exactly 0 or 1; anything
    else (a float mask of scores, NaN) is the package's own error naming the weight."""
    array = np.asarray(mask)
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number):
            raise PruningError(f"mask for {name} must be boolean, got dtype {array.dtype}")
        if not np.all(np.isin(array, (0, 1))):
            raise PruningError(f"mask for {name} must hold only True/False (or 0/1), got other values "
                               "(a float mask of scores, or NaN?)")
        array = array.astype(bool)
    if shape is not None and tuple(array.shape) != tuple(shape):
        raise PruningError(f"mask for {name} has shape {array.shape}, the weight has {tuple(shape)}")
    return array


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
            self.set_mask(_unpack(mask))

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
            return
        mask = check_mask("the constraint", mask)
        if self.mask is None:
            self.mask = keras.Variable(mask.astype("float32"), trainable=False, dtype="float32", name="prune_mask")
        else:
            self.mask.assign(mask.astype("float32"))

    def get_config(self):
        return {"threshold": self.threshold,
                "mask": None if self.mask is None else _pack(np.asarray(ops.convert_to_numpy(self.mask)) != 0)}


def step_holds_masks_as_constants():
    """Whether a traced train step keeps a mask's value from when it was traced, so that a mask
    assigned in place (``PruningConstraint.set_mask``) needs a new trace: not on TensorFlow, whose
    traced step reads the mask variable; yes on JAX, whose jitted step holds it as a constant
    (and on any other backend, to be safe)."""
    return keras.backend.backend() != "tensorflow"


def retrace(model):
    """Keras reads variable constraints when it traces the train step: after any change of a
    constraint, drop the traced step so the next ``fit`` / ``train_on_batch`` traces it again."""
    if getattr(model, "train_function", None) is not None:
        model.train_function = None


# Composite layers whose config does not carry their sublayers' constraints.
_CONFIG_LOSES_SUBLAYER_CONSTRAINTS = (keras.layers.MultiHeadAttention, keras.layers.Bidirectional)


def set_constraint(ref, constraint):
    """Install ``constraint`` (or None) on the weight ``ref`` (a ``helpers.layers.WeightRef``) and,
    for its layer's config, on the layer."""
    ref.variable.constraint = constraint
    if ref.constraint_attribute is not None:
        setattr(ref.layer, ref.constraint_attribute, constraint)


def resolve(model, masks):
    """``{key: WeightRef}`` for the keys of ``masks`` (weight keys, or unique ``variable.path``),
    shapes and values checked; the package's error names anything unknown."""
    table = weight_table(model)
    by_path = {}
    for ref in table.values():
        by_path.setdefault(ref.variable.path, []).append(ref)
    resolved = {}
    for key, mask in masks.items():
        ref = table.get(key)
        if ref is None:
            candidates = by_path.get(key, [])
            if len(candidates) > 1:
                raise PruningError(f"mask key {key!r} names {len(candidates)} weights (nested layers with the same "
                                   f"name); use their keys: {[r.key for r in candidates]}")
            ref = candidates[0] if candidates else None
        if ref is None:
            raise PruningError(f"masks name a weight the model does not have: {key!r}")
        resolved[ref.key] = (ref, check_mask(ref.key, mask, ref.variable.shape))
    return resolved


def apply_masks(model, masks):
    """Zero the pruned entries of ``model`` in place (once)."""
    for ref, mask in resolve(model, masks).values():
        value = np.asarray(ops.convert_to_numpy(ref.variable))
        ref.variable.assign(np.where(mask, value, 0).astype(value.dtype))


def attach_masks(model, masks):
    """Apply ``masks`` and keep them applied during retraining (a ``PruningConstraint`` per variable).

    A variable that already has one (ITP's threshold, or an earlier mask) keeps it and gets the
    new mask in place. Returns ``{key: PruningConstraint}``. The train step is retraced when a
    constraint is new. When every mask replaces one in place, TensorFlow's traced step is kept:
    it reads the mask variables (a search that re-attaches masks every episode saves a trace each
    time); other backends retrace (a jitted JAX step holds the mask as a constant).
    """
    resolved = resolve(model, masks)
    apply_masks(model, {key: mask for key, (_, mask) in resolved.items()})
    constraints, unsaved = {}, []
    parents = _composite_parents(model)
    installed = False
    for key, (ref, mask) in resolved.items():
        current = ref.variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            current.set_mask(mask)
        else:
            threshold = current.threshold if isinstance(current, PruningConstraint) else None
            current = PruningConstraint(threshold, mask)  # a shared ITP constraint is not changed
            set_constraint(ref, current)
            installed = True
        constraints[key] = current
        if id(ref.layer) in parents:
            unsaved.append(key)
    if unsaved:
        warnings.warn(f"masks on {unsaved} are kept while training but not by a .keras save (their composite layer "
                      "rebuilds them from its own config): keep them with pruning.save_masks and attach them again "
                      "after loading", stacklevel=2)
    if installed or step_holds_masks_as_constants():
        retrace(model)
    return constraints


def _composite_parents(model):
    inside = set()
    for _, layer in named_layers(model):
        if isinstance(layer, _CONFIG_LOSES_SUBLAYER_CONSTRAINTS):
            for _, sub in named_layers(layer):
                inside.add(id(sub))
    return inside


def detach_masks(model):
    """Remove every mask (an ITP threshold stays); the train step is retraced."""
    for ref in weight_table(model).values():
        current = ref.variable.constraint
        if isinstance(current, PruningConstraint) and current.mask is not None:
            kept = PruningConstraint(current.threshold) if current.threshold is not None else None
            set_constraint(ref, kept)
    retrace(model)


@validated(epochs=Epochs(0), batch_size=Int(1), learning_rate=Float(0.0, min_open=True), seed=Seed())
def retrain_with_masks(model, masks, x, y, epochs, batch_size, learning_rate, seed=0, callbacks=()):
    """Retrain ``model`` for ``epochs`` on ``(x, y)`` (Adam at ``learning_rate``, sparse
    cross-entropy, ``keras.utils.set_random_seed(seed)`` first) with ``masks`` attached, so every
    pruned weight is still zero afterwards and a budget met before still holds; the masks are
    detached at the end (the weights stay pruned), also when a callback raises. ``epochs=0``
    returns ``model`` untouched. Recompiles ``model``. ``callbacks`` go to ``fit`` (e.g.
    ``helpers.callbacks.NonFiniteGuard()``)."""
    if epochs == 0:
        return model
    attach_masks(model, masks)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    try:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks))
    finally:
        detach_masks(model)
    return model


@validated(batch_size=Int(1))
def recalibrate_batch_norm(model, x, batch_size=256):
    """Re-estimate the moving mean and variance of every trainable ``BatchNormalization`` layer of
    ``model`` on the images ``x`` ("adaptive BN", Li et al. 2020, EagleEye). Removing channels
    changes the inputs of every later BN, and a pruned network normalised with the dense
    network's statistics can be near chance while its weights are not: notebook 08's ResNet-20
    with 30% of every group's filters removed and 8 recovery steps, 0.123 before and 0.595 after
    (512 images).

    ``model`` runs in training mode on ``x`` in batches of ``batch_size`` (each BN normalising
    with its batch's statistics, as in training, dropout included); each layer's statistics become
    the exact (count-weighted) mean and biased variance of its inputs over all of ``x``. Nothing else changes
    (BN layers with ``trainable=False`` run in inference mode and keep theirs). Returns the
    number of layers recalibrated."""
    layers = [layer for _, layer in named_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not layers or len(x) == 0:
        return 0
    momenta = [layer.momentum for layer in layers]
    first = [0.0] * len(layers)  # per layer: the sum over batches of n * mean ...
    second = [0.0] * len(layers)  # ... and of n * (variance + mean^2), i.e. n * E[x^2]
    try:
        for layer in layers:
            layer.momentum = 0.0  # a training-mode call then stores exactly its batch's statistics
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            model(batch, training=True)
            for i, layer in enumerate(layers):
                mean = np.asarray(ops.convert_to_numpy(layer.moving_mean), dtype=np.float64)
                variance = np.asarray(ops.convert_to_numpy(layer.moving_variance), dtype=np.float64)
                first[i] = first[i] + len(batch) * mean
                second[i] = second[i] + len(batch) * (variance + mean**2)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for layer, total, total_squares in zip(layers, first, second):
        mean = total / len(x)
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(np.maximum(total_squares / len(x) - mean**2, 0.0).astype("float32"))
    return len(layers)


def current_masks(model):
    """The masks attached to ``model`` now, ``{key: boolean array}``."""
    return {key: np.asarray(ops.convert_to_numpy(ref.variable.constraint.mask)) != 0
            for key, ref in weight_table(model).items()
            if isinstance(ref.variable.constraint, PruningConstraint) and ref.variable.constraint.mask is not None}


def save_masks(masks, path):
    """Write ``{key: keep-mask}`` to ``path`` (``.npz``, bit-packed)."""
    arrays = {}
    for index, (key, mask) in enumerate(masks.items()):
        mask = check_mask(key, mask)
        arrays[f"k{index}"] = np.frombuffer(key.encode(), dtype=np.uint8)
        arrays[f"s{index}"] = np.asarray(mask.shape, dtype=np.int64)
        arrays[f"m{index}"] = np.packbits(mask.ravel())
    np.savez_compressed(path, **arrays)


def load_masks(path):
    """The ``{key: keep-mask}`` written by ``save_masks``."""
    with np.load(path, allow_pickle=False) as data:
        count = sum(1 for name in data.files if name.startswith("k"))
        return {bytes(data[f"k{i}"]).decode(): np.unpackbits(data[f"m{i}"], count=int(np.prod(data[f"s{i}"])))
                .astype(bool).reshape(tuple(data[f"s{i}"])) for i in range(count)}


def _from_helpers(obj):
    return obj is not None and type(obj).__module__.split(".")[0] == "helpers"


def strip(model):
    """A plain Keras copy of ``model`` (same weights and outputs) without this package's
    constraints or regularizers, nested models included, like tfmot's ``strip_pruning``: it saves
    to a ``.keras`` file that loads in a process that never imports ``helpers``. Masked weights
    stay zero (they are zero in the weights); training the copy does not keep them zero.
    """

    def clean(layer):
        config = layer.get_config()
        for key in config:
            if key.endswith(("_constraint", "_regularizer")) and _from_helpers(getattr(layer, key, None)):
                config[key] = None
        return type(layer).from_config(config)

    stripped = keras.models.clone_model(model, clone_function=clean, recursive=True)
    stripped.set_weights(model.get_weights())
    leftover = [ref.key for ref in weight_table(stripped).values()
                if _from_helpers(ref.variable.constraint) or _from_helpers(getattr(ref.layer, ref.constraint_attribute or "", None))]
    for key in leftover:  # sublayers a composite layer built from its own (clean) config
        ref = weight_table(stripped)[key]
        set_constraint(ref, None)
    return stripped

"""Turn a unit- or filter-pruned network into a physically smaller one with the same outputs.

Masked weights save nothing at inference: the matrix multiplications keep their shapes. After
structured pruning, though, whole units (Dense columns) and filters (Conv2D output channels)
have an all-zero incoming kernel, so they output a constant, ``activation(bias)`` (0 for a
pruned ReLU unit). ``compact`` removes them, slices the next layer's inputs to match, and folds
the constants of the removed inputs into the next layer's bias, so the smaller model computes
the same function (up to float rounding). The result is an ordinary Keras model: it saves to and
loads from the standard ``.keras`` format with no custom objects.

Supported: sequential chains of the layer types in ``HANDLERS`` (Dense, Conv2D,
BatchNormalization, pooling, Flatten, Dropout, Activation/ReLU: LeNet-5, the VGG, the MLP and
the CIFAR CNN of this package). Anything else (a residual ``Add``, a layer with several
inputs, an unknown layer type) raises ``NotImplementedError`` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from ..layers import all_layers


@dataclass
class _Flow:
    """What the layers so far did to the channels of the current activation."""

    keep: np.ndarray | None = None      # kept channels (None: all)
    constant: np.ndarray | None = None  # the value every removed channel carries
    spatial: tuple | None = None        # (H, W) when the previous Flatten flattened a feature map


def _activation_values(layer, values):
    return np.asarray(ops.convert_to_numpy(layer.activation(ops.convert_to_tensor(values.astype("float32")))))


def _rebuilt(layer, **changes):
    config = layer.get_config()
    config.update(changes)
    return type(layer).from_config(config)


def _weighted(layer, flow, is_last):
    """Dense / Conv2D: drop the removed inputs (their constants go into the bias), then drop the
    outputs whose incoming kernel is all zero (unless this is the last weighted layer)."""
    kernel = layer.kernel.numpy().astype(np.float64)
    bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
    dense = isinstance(layer, keras.layers.Dense)
    if flow.keep is not None:
        if dense:
            in_keep, in_const = flow.keep, flow.constant
            if flow.spatial is not None:  # Flatten of (H, W, C), channels last: channel = index % C
                in_keep = np.tile(flow.keep, flow.spatial[0] * flow.spatial[1])
                in_const = np.tile(flow.constant, flow.spatial[0] * flow.spatial[1])
            bias = bias + in_const[~in_keep] @ kernel[~in_keep]
            kernel = kernel[in_keep]
        else:
            removed = ~flow.keep
            if np.any(flow.constant[removed] != 0) and layer.padding != "valid":
                raise NotImplementedError(
                    f"{layer.name}: removed input channels carry a nonzero constant and the padding is "
                    f"'{layer.padding}', so folding it into the bias would be wrong at the borders")
            bias = bias + np.einsum("hwco,c->o", kernel[:, :, removed, :], flow.constant[removed])
            kernel = kernel[:, :, flow.keep, :]
    out_keep = np.ones(kernel.shape[-1], bool) if is_last else np.any(kernel != 0, axis=tuple(range(kernel.ndim - 1)))
    out_constant = np.zeros(kernel.shape[-1])
    if (~out_keep).any():
        out_constant[~out_keep] = _activation_values(layer, bias[~out_keep])
    new = _rebuilt(layer, name=layer.name, kernel_constraint=None, bias_constraint=None, kernel_regularizer=None,
                   bias_regularizer=None, activity_regularizer=None, **{"units" if dense else "filters": int(out_keep.sum())})
    weights = [kernel[..., out_keep].astype("float32")] + ([bias[out_keep].astype("float32")] if layer.use_bias else [])
    flow.keep, flow.constant, flow.spatial = out_keep, out_constant, None
    return new, weights, {"layer": layer.name, "kept": int(out_keep.sum()), "of": int(out_keep.size)}


def _batchnorm(layer, flow, is_last):
    gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in layer.weights)
    if flow.keep is not None:
        removed = ~flow.keep
        flow.constant = flow.constant.copy()
        flow.constant[removed] = gamma[removed] * (flow.constant[removed] - mean[removed]) / np.sqrt(
            var[removed] + layer.epsilon) + beta[removed]
        gamma, beta, mean, var = gamma[flow.keep], beta[flow.keep], mean[flow.keep], var[flow.keep]
    return _rebuilt(layer), [w.astype("float32") for w in (gamma, beta, mean, var)], None


def _flatten(layer, flow, is_last):
    feature_shape = layer.input.shape[1:] if hasattr(layer, "input") else None
    if feature_shape is not None and len(feature_shape) == 3:
        flow.spatial = (int(feature_shape[0]), int(feature_shape[1]))
    return _rebuilt(layer), [], None


def _elementwise(layer, flow, is_last):
    if flow.keep is not None and (~flow.keep).any():
        flow.constant = flow.constant.copy()
        flow.constant[~flow.keep] = np.asarray(ops.convert_to_numpy(layer(flow.constant[~flow.keep].astype("float32")[None])))[0]
    return _rebuilt(layer), [], None


def _pass_through(layer, flow, is_last):
    # Pooling a constant map gives the same constant (valid pooling windows); dropout is the
    # identity at inference.
    return _rebuilt(layer), [], None


# Per layer type: handler(layer, flow, is_last) -> (new layer, its weights, report row or None).
# Looked up in order with isinstance, so subclasses are handled like their base type.
HANDLERS = (
    ((keras.layers.Dense, keras.layers.Conv2D), _weighted),
    ((keras.layers.BatchNormalization,), _batchnorm),
    ((keras.layers.Flatten,), _flatten),
    ((keras.layers.Activation, keras.layers.ReLU), _elementwise),
    ((keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout), _pass_through),
)
_WEIGHTED = HANDLERS[0][0]


def _handler(layer):
    for types, handler in HANDLERS:
        if isinstance(layer, types):
            return handler
    raise NotImplementedError(f"compaction does not support {type(layer).__name__} ({layer.name}); supported: "
                              + ", ".join(t.__name__ for types, _ in HANDLERS for t in types))


def _chain(model):
    layers = [layer for layer in all_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        inbound = getattr(layer, "_inbound_nodes", [])
        if len(inbound) > 1 or (inbound and len(inbound[0].input_tensors) > 1):
            raise NotImplementedError(f"compaction supports sequential chains; {layer.name} "
                                      f"({type(layer).__name__}) has several inputs")
    return layers


def compact(model, name=None):
    """A smaller model without the dead units/filters of ``model`` and with the same outputs.

    Returns ``(compact_model, report)`` where ``report`` lists per layer the units kept.
    """
    layers = _chain(model)
    handlers = [_handler(layer) for layer in layers]  # an unsupported layer fails before any work
    last_weighted = max((i for i, layer in enumerate(layers) if isinstance(layer, _WEIGHTED)), default=-1)
    flow, built, report = _Flow(), [], []
    for index, (layer, handler) in enumerate(zip(layers, handlers)):
        new, weights, row = handler(layer, flow, index == last_weighted)
        built.append((new, weights))
        if row is not None:
            report.append(row)
    inputs = keras.Input(tuple(model.input_shape[1:]))
    x = inputs
    for new, _ in built:
        x = new(x)
    small = keras.Model(inputs, x, name=name or f"{model.name}_compact")
    for new, weights in built:
        if weights:
            new.set_weights(weights)
    return small, report

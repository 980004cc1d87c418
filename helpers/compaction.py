"""Turn a unit- or filter-pruned network into a physically smaller one with the same outputs.

Masked weights save nothing at inference: the matrix multiplications keep their shapes. After
structured pruning, though, whole units (Dense columns) and filters (Conv2D output channels)
have an all-zero incoming kernel, so they output a constant, ``activation(bias)`` (0 for a
pruned ReLU unit). ``compact`` removes them, slices the next layer's inputs to match, and folds
the constants of the removed inputs into the next layer's bias, so the smaller model computes
the same function (up to float rounding). The result is an ordinary Keras model: it saves to and
loads from the standard ``.keras`` format with no custom objects.

Supported: sequential chains of Dense, Conv2D, BatchNormalization, pooling, Flatten, Dropout and
Activation/ReLU layers (LeNet-5, the VGG, the MLP and the CIFAR CNN of this package).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .models import _all_layers

_PASS_THROUGH = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Dropout,
                 keras.layers.InputLayer)
_ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU)


def _activation_values(layer, values):
    return np.asarray(ops.convert_to_numpy(layer.activation(ops.convert_to_tensor(values.astype("float32")))))


def _chain(model):
    layers = [layer for layer in _all_layers(model) if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        inbound = getattr(layer, "_inbound_nodes", [])
        if len(inbound) > 1 or (inbound and len(inbound[0].input_tensors) > 1):
            raise NotImplementedError(f"compaction supports sequential chains; {layer.name} has several inputs")
    return layers


def compact(model, name=None):
    """A smaller model without the dead units/filters of ``model`` and with the same outputs.

    Returns ``(compact_model, report)`` where ``report`` lists per layer the units kept.
    """
    layers = _chain(model)
    input_shape = tuple(model.input_shape[1:])
    keep = None          # kept channels of the current activation (None: all)
    constant = None      # value of every removed channel (same length as ~keep)
    spatial = None       # (H, W) when the previous Flatten flattened a feature map
    new_layers, report = [], []
    shape = input_shape

    for index, layer in enumerate(layers):
        is_last = index == len(layers) - 1 or not any(isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))
                                                     for l in layers[index + 1:])
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            kernel = layer.kernel.numpy().astype(np.float64)
            bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
            if keep is not None:
                removed = ~keep
                if isinstance(layer, keras.layers.Dense):
                    in_keep, in_const = keep, constant
                    if spatial is not None:  # Flatten of (H, W, C), channels last: channel = index % C
                        in_keep = np.tile(keep, spatial[0] * spatial[1])
                        in_const = np.tile(constant, spatial[0] * spatial[1])
                    bias = bias + in_const[~in_keep] @ kernel[~in_keep]
                    kernel = kernel[in_keep]
                else:
                    if np.any(constant[removed] != 0) and layer.padding != "valid":
                        raise NotImplementedError(
                            f"{layer.name}: removed input channels carry a nonzero constant and the padding is "
                            f"'{layer.padding}', so folding it into the bias would be wrong at the borders")
                    bias = bias + np.einsum("hwco,c->o", kernel[:, :, removed, :], constant[removed])
                    kernel = kernel[:, :, keep, :]
            spatial = None
            reduce_axes = tuple(range(kernel.ndim - 1))
            if is_last:
                out_keep = np.ones(kernel.shape[-1], dtype=bool)
            else:
                out_keep = np.any(kernel != 0, axis=reduce_axes)
            out_constant = np.zeros(kernel.shape[-1])
            if (~out_keep).any():
                out_constant[~out_keep] = _activation_values(layer, bias[~out_keep])
            config = layer.get_config()
            config.update(name=layer.name, kernel_constraint=None, bias_constraint=None, kernel_regularizer=None,
                          bias_regularizer=None, activity_regularizer=None)
            config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = int(out_keep.sum())
            new = type(layer).from_config(config)
            new_weights = [kernel[..., out_keep].astype("float32")]
            if layer.use_bias:
                new_weights.append(bias[out_keep].astype("float32"))
            new_layers.append((new, new_weights))
            report.append({"layer": layer.name, "kept": int(out_keep.sum()), "of": int(out_keep.size)})
            keep, constant = out_keep, out_constant
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in layer.weights)
            if keep is not None:
                removed = ~keep
                constant = constant.copy()
                constant[removed] = gamma[removed] * (constant[removed] - mean[removed]) / np.sqrt(
                    var[removed] + layer.epsilon) + beta[removed]
                gamma, beta, mean, var = gamma[keep], beta[keep], mean[keep], var[keep]
            config = layer.get_config()
            new = type(layer).from_config(config)
            new_layers.append((new, [w.astype("float32") for w in (gamma, beta, mean, var)]))
        elif isinstance(layer, keras.layers.Flatten):
            feature_shape = layer.input.shape[1:] if hasattr(layer, "input") else None
            if feature_shape is not None and len(feature_shape) == 3:
                spatial = (int(feature_shape[0]), int(feature_shape[1]))
            new_layers.append((type(layer).from_config(layer.get_config()), []))
        elif isinstance(layer, _ELEMENTWISE):
            if keep is not None and (~keep).any():
                constant = constant.copy()
                constant[~keep] = np.asarray(ops.convert_to_numpy(layer(constant[~keep].astype("float32")[None])))[0]
            new_layers.append((type(layer).from_config(layer.get_config()), []))
        elif isinstance(layer, _PASS_THROUGH):
            # Pooling a constant map gives the same constant (valid pooling windows); dropout is
            # the identity at inference.
            new_layers.append((type(layer).from_config(layer.get_config()), []))
        else:
            raise NotImplementedError(f"compaction does not support {type(layer).__name__} ({layer.name})")

    inputs = keras.Input(shape)
    x = inputs
    for new, _ in new_layers:
        x = new(x)
    small = keras.Model(inputs, x, name=name or f"{model.name}_compact")
    for new, weights in new_layers:
        if weights:
            new.set_weights(weights)
    return small, report

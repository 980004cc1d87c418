"""Turn a structurally pruned network into a physically smaller one with the same outputs.

Masked weights save nothing at inference: the matrix multiplications keep their shapes.
``compact`` rewrites the graph instead: it finds, with the dependency graph
(``dependency.DependencyGraph``), every channel that can be removed without changing any output,
builds a new functional model with smaller layers (fewer units / filters, sliced inputs, sliced
BN statistics and depthwise channels, through residual Adds, Concatenates and squeeze-excite
Multiplies alike) and copies the weights over. The result is an ordinary Keras model with no
custom objects.

A channel can be removed when no kernel layer that reads it is affected:

- its input slice in the reader is all zero (what a structured mask from ``masks_for`` makes: the
  masked model is then exactly the compacted one), or
- the channel's value is exactly 0 everywhere (a zeroed filter before ReLU), or
- its value is one known constant (a zeroed unit before a sigmoid: 0.5; a zeroed conv before BN:
  ``beta - gamma * mean / sqrt(var + eps)``) and the reader is a Dense layer or a convolution with
  ``padding="valid"``: the constant's contribution goes into the reader's bias, which is created
  when the layer has none. (With "same" padding the border sees zeros instead of the constant, so
  the channel is kept.)

A MultiHeadAttention is rebuilt with fewer heads where heads add exactly zero (``live_heads``:
what ``masks_for(..., granularity="head")`` makes); its input and output channels are kept.

Channels the graph cannot follow (``DependencyGraph.blocked``) are kept; a layer is never emptied
(one channel stays). After building, the compacted model is checked against the original on a
random batch; a difference above float32 rounding raises ``CompactionError`` naming the
largest-differing output, never a model that computes something else.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from keras import ops

from .dependency import DependencyGraph, activation_is_elementwise
from .errors import CompactionError

L = keras.layers


def _f64(variable):
    return np.asarray(ops.convert_to_numpy(variable), dtype=np.float64)


def _activate(activation, values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    out = activation(ops.convert_to_tensor(values.astype("float32")))
    return np.asarray(ops.convert_to_numpy(out), dtype=np.float64)


def _kernel_out_slices_zero(call):
    """Per output channel: is every weight producing it zero?"""
    layer = call.layer
    if call.role == "kernel":
        kernel = _f64(layer.kernel)
        return ~np.any(kernel != 0, axis=tuple(range(kernel.ndim - 1)))
    if call.role == "transpose":
        kernel = _f64(layer.kernel)
        return ~np.any(np.moveaxis(kernel, -2, -1) != 0, axis=tuple(range(kernel.ndim - 1)))
    kernel = _f64(layer.pointwise_kernel)
    return ~np.any(kernel != 0, axis=tuple(range(kernel.ndim - 1)))


def _kernel_in_slices_zero(call):
    """Per input channel: does the layer read it with all-zero weights?"""
    layer = call.layer
    if call.role == "kernel":
        kernel = _f64(layer.kernel)
        return ~np.any(np.moveaxis(kernel, -2, -1) != 0, axis=tuple(range(kernel.ndim - 1)))
    if call.role == "transpose":
        kernel = _f64(layer.kernel)
        return ~np.any(kernel != 0, axis=tuple(range(kernel.ndim - 1)))
    depthwise, pointwise = _f64(layer.depthwise_kernel), _f64(layer.pointwise_kernel)
    m = layer.depth_multiplier
    dead_depthwise = ~np.any(depthwise != 0, axis=tuple(i for i in range(depthwise.ndim) if i != depthwise.ndim - 2))
    rows = ~np.any(pointwise != 0, axis=tuple(i for i in range(pointwise.ndim) if i != pointwise.ndim - 2))
    return dead_depthwise | rows.reshape(-1, m).all(axis=1)


def _folds_constants(call):
    """Can a constant input channel's contribution be moved into this layer's bias exactly?"""
    return call.role == "kernel" and (isinstance(call.layer, L.Dense) or call.layer.padding == "valid")


def _values(graph):
    """Per space, the constant value of each channel (NaN: not a known constant), at inference."""
    values = [np.full(s.size, np.nan) for s in graph.spaces]
    for call in graph.calls:
        layer, role = call.layer, call.role
        if role == "blocked" or not call.outputs:
            continue
        inputs = [values[s] for s in call.inputs]
        out = np.full(graph.spaces[call.outputs[0]].size, np.nan)
        if role in ("kernel", "transpose", "separable"):
            if not activation_is_elementwise(layer.activation):  # softmax & co.: no per-channel constant
                continue
            dead = _kernel_out_slices_zero(call)
            bias = _f64(layer.bias) if layer.use_bias else np.zeros(dead.size)
            out[dead] = _activate(layer.activation, bias[dead])
        elif role == "depthwise":
            kernel, m = _f64(layer.kernel), layer.depth_multiplier
            dead = ~np.any(kernel != 0, axis=tuple(range(kernel.ndim - 2))).reshape(-1)
            dead |= np.repeat(inputs[0] == 0, m)  # a zero input stays zero under any padding
            bias = _f64(layer.bias) if layer.use_bias else np.zeros(dead.size)
            out[dead] = _activate(layer.activation, bias[dead])
        elif role == "norm":
            gamma = _f64(layer.gamma) if layer.scale else 1.0
            beta = _f64(layer.beta) if layer.center else 0.0
            mean, var = _f64(layer.moving_mean), _f64(layer.moving_variance)
            out = gamma * (inputs[0] - mean) / np.sqrt(var + layer.epsilon) + beta
        elif role == "channelwise":
            v = inputs[0]
            if isinstance(layer, L.Activation):
                out = _activate(layer.activation, np.nan_to_num(v, nan=0.0))
                out[np.isnan(v)] = np.nan
            elif isinstance(layer, (L.ReLU, L.LeakyReLU, L.ELU)):
                out = np.asarray(ops.convert_to_numpy(layer(np.nan_to_num(v, nan=0.0).astype("float32")[None])),
                                 dtype=np.float64)[0]
                out[np.isnan(v)] = np.nan
            elif isinstance(layer, (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D)):
                out = np.where(v == 0, 0.0, np.nan)
            elif isinstance(layer, L.Rescaling):
                out = v * float(np.ravel(layer.scale)[0]) + float(np.ravel(layer.offset)[0])
            else:  # pooling, global pooling, dropout, cropping, up-sampling, reshape: a constant stays
                out = v.copy()
        elif role == "flatten":
            c = graph.spaces[call.inputs[0]].size
            out = inputs[0][np.arange(out.size) % c]
        elif role == "merge":
            size = out.size
            parts = np.stack([np.broadcast_to(v, size) for v in inputs])
            if isinstance(layer, L.Add):
                out = parts.sum(axis=0)
            elif isinstance(layer, L.Subtract):
                out = parts[0] - parts[1]
            elif isinstance(layer, L.Average):
                out = parts.mean(axis=0)
            elif isinstance(layer, L.Maximum):
                out = parts.max(axis=0)
            elif isinstance(layer, L.Minimum):
                out = parts.min(axis=0)
            else:  # Multiply: a zero factor makes the product zero whatever the other factors are
                out = np.prod(parts, axis=0)
                out[np.any(parts == 0, axis=0)] = 0.0
        elif role == "concat":
            if len(inputs[0]) == out.size:  # concatenation along another axis: constants must agree
                stacked = np.stack(inputs)
                out = np.where(np.all(stacked == stacked[0], axis=0), stacked[0], np.nan)
            else:
                out = np.concatenate(inputs)
        for s in call.outputs:
            values[s] = out
    return values


def removable_channels(model, graph=None):
    """``(labels, values)``: the channel labels of ``graph`` that can be removed from ``model``
    without changing its outputs, and the constant values per space (see the module docstring)."""
    graph = graph or DependencyGraph.of(model)
    values = _values(graph)
    labels = graph.labels
    candidate = graph.produced_component & ~graph.blocked_component
    harmful = np.zeros(len(labels), bool)
    for call in graph.calls:
        if call.role not in ("kernel", "transpose", "separable"):
            continue
        space = graph.spaces[call.inputs[0]]
        v = values[call.inputs[0]]
        ok = _kernel_in_slices_zero(call) | (v == 0)
        if _folds_constants(call):
            ok |= np.isfinite(v)
        harmful[labels[space.nodes[~ok]]] = True
    removable = candidate & ~harmful
    # A layer is never emptied: where every output channel of a producer would go, keep the first.
    for space in graph.producer_spaces:
        space_labels = labels[graph.spaces[space].nodes]
        if space_labels.size and removable[space_labels].all():
            removable[space_labels[0]] = False
    return np.flatnonzero(removable[np.arange(len(labels))] & (labels == np.arange(len(labels)))), values


def _clean_config(layer, **changes):
    config = layer.get_config()
    for key, value in list(config.items()):
        if key.endswith(("_constraint", "_regularizer")) and value is not None:
            obj = getattr(layer, key, None)
            if obj is None or type(obj).__module__.split(".")[0] == "helpers" or key == "activity_regularizer":
                config[key] = None
    config.update(changes)
    return config


def _new_layer(call, k_in, k_out, fold, names):
    """The rebuilt layer of one call and its weights (None: copy the old ones)."""
    layer, role = call.layer, call.role
    name = names[id(layer)]
    if role in ("kernel", "transpose", "separable"):
        size_key = "units" if isinstance(layer, L.Dense) else "filters"
        bias = _f64(layer.bias)[k_out] if layer.use_bias else np.zeros(int(k_out.sum()))
        bias = bias + fold[k_out]
        use_bias = layer.use_bias or bool(np.any(fold[k_out] != 0))
        config = _clean_config(layer, name=name, use_bias=use_bias, **{size_key: int(k_out.sum())})
        if role == "kernel":
            kernel = _f64(layer.kernel)[..., k_in, :][..., k_out]
            weights = [kernel]
        elif role == "transpose":
            kernel = _f64(layer.kernel)[..., k_out, :][..., k_in]
            weights = [kernel]
        else:
            m = layer.depth_multiplier
            depthwise = _f64(layer.depthwise_kernel)[..., k_in, :]
            pointwise = _f64(layer.pointwise_kernel)[..., np.repeat(k_in, m), :][..., k_out]
            weights = [depthwise, pointwise]
        if use_bias:
            weights.append(bias)
        return type(layer).from_config(config), weights
    if role == "depthwise":
        m = layer.depth_multiplier
        weights = [_f64(layer.kernel)[..., k_in, :]]
        if layer.use_bias:
            weights.append(_f64(layer.bias)[k_out])
        return type(layer).from_config(_clean_config(layer, name=name)), weights
    if role == "norm":
        weights = [_f64(w)[k_out] for w in layer.weights]
        return type(layer).from_config(_clean_config(layer, name=name)), weights
    if isinstance(layer, L.MultiHeadAttention) and len(call.outputs) == 1:  # not with attention scores out
        alive = live_heads(layer)
        if not alive.all():
            sliced = _head_sliced_weights(layer, alive)
            config = _clean_config(layer, name=name, num_heads=int(alive.sum()))
            return type(layer).from_config(config), [sliced[id(v)] for v in layer.weights]
    if isinstance(layer, L.Reshape):
        target = tuple(layer.target_shape)
        return type(layer).from_config(_clean_config(layer, name=name, target_shape=(*target[:-1], int(k_out.sum())))), None
    return type(layer).from_config(_clean_config(layer, name=name)), None


def live_heads(layer):
    """Which heads of a MultiHeadAttention add anything: a head whose value projection (kernel
    and bias) or whose rows of the output projection are all zero adds exactly zero. One head is
    always kept (a layer needs one)."""
    value, output = layer.value_dense, layer.output_dense
    dead_value = ~np.any(_f64(value.kernel) != 0, axis=(0, 2))
    if value.bias is not None:
        dead_value &= ~np.any(_f64(value.bias) != 0, axis=1)
    dead_output = ~np.any(_f64(output.kernel).reshape(layer.num_heads, -1) != 0, axis=1)
    alive = ~(dead_value | dead_output)
    if not alive.any():
        alive[0] = True
    return alive


def _head_sliced_weights(layer, alive):
    """``{id(variable): array}``: the weights of ``layer`` with only the ``alive`` heads."""
    sliced = {}
    for part, dense in (("query", layer.query_dense), ("key", layer.key_dense), ("value", layer.value_dense),
                        ("output", layer.output_dense)):
        sliced[id(dense.kernel)] = _f64(dense.kernel)[alive] if part == "output" else _f64(dense.kernel)[:, alive]
        if dense.bias is not None:
            sliced[id(dense.bias)] = _f64(dense.bias) if part == "output" else _f64(dense.bias)[alive]
    return sliced


def _unique_names(graph):
    names, used = {}, set()
    for call in graph.calls:
        if id(call.layer) in names:
            continue
        name = call.layer.name if call.layer.name not in used else call.key.replace("/", "_")
        while name in used:
            name += "_"
        used.add(name)
        names[id(call.layer)] = name
    return names


def compact(model, name=None, verify=True, atol=1e-5):
    """A smaller model without the removable channels of ``model`` and with the same outputs.

    Returns ``(compact_model, report)``; ``report`` lists, per kernel layer that produces
    channels, ``{"layer", "kept", "of"}`` (and ``"reason"`` where the graph could not follow
    the layer, which is then kept whole). With ``verify`` (default) both models are run on a
    random batch and a difference above ``atol`` times the largest |output| raises
    ``CompactionError``. A subclassed model raises ``PruningError`` (no graph to follow).
    """
    graph = DependencyGraph.of(model)
    removable, values = removable_channels(model, graph)
    keep = graph.keep_vectors(removable)
    names = _unique_names(graph)
    # Constants of removed channels that a reader folds into its bias.
    folds = {}
    for index, call in enumerate(graph.calls):
        if call.role not in ("kernel", "transpose", "separable"):
            continue
        k_in, v = keep[call.inputs[0]], values[call.inputs[0]]
        folded = ~k_in & np.isfinite(v) & (v != 0) & ~_kernel_in_slices_zero(call)
        out_size = graph.spaces[call.outputs[0]].size
        fold = np.zeros(out_size)
        if folded.any():
            kernel = _f64(call.layer.kernel)  # only Dense / valid convolutions fold (removable_channels)
            sliced = kernel[..., folded, :]  # every kernel tap sees the constant: sum the taps
            fold = v[folded] @ sliced.reshape(-1, *sliced.shape[-2:]).sum(axis=0)
        folds[index] = fold
    for call in graph.calls:
        for s in call.outputs:
            if call.role in ("kernel", "transpose", "separable") and not keep[s].any():
                raise CompactionError(f"{call.key}: every output channel would be removed")
    top = model if not isinstance(model, keras.Sequential) else model._functional
    new_inputs = [keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=getattr(t, "name", None)) for t in top.inputs]
    tensor_of = {}
    for space, tensor in zip(graph.input_spaces, new_inputs):
        tensor_of[space] = tensor
    built, to_set, report = {}, [], []
    for index, call in enumerate(graph.calls):
        k_in = keep[call.inputs[0]] if call.inputs else None
        k_out = keep[call.outputs[0]] if call.outputs else None
        if id(call.layer) not in built:
            if not isinstance(call.layer, keras.layers.Layer):
                raise CompactionError(f"{call.key}: a {type(call.layer).__name__} operation in the graph cannot be "
                                      "rebuilt; wrap it in a layer")
            new, weights = _new_layer(call, k_in, k_out, folds.get(index, np.zeros(0)), names)
            built[id(call.layer)] = new
            to_set.append((new, weights, call.layer))
            if call.role in ("kernel", "transpose", "separable"):
                report.append({"layer": call.key, "kept": int(k_out.sum()), "of": int(k_out.size)})
            elif isinstance(call.layer, L.MultiHeadAttention) and new.num_heads < call.layer.num_heads:
                report.append({"layer": call.key, "kept": new.num_heads, "of": call.layer.num_heads, "unit": "heads"})
            elif call.role == "blocked" and _holds_kernels(call.layer):
                size = getattr(call.layer, "filters", None) or getattr(call.layer, "units", None)
                report.append({"layer": call.key, "kept": size, "of": size, "reason": call.reason})
        new = built[id(call.layer)]
        # The call as the model made it (several tensors, keywords such as MultiHeadAttention's
        # query/value), with the new tensors in place of the old ones.
        args, kwargs = call.node.arguments.fill_in(
            {id(old): tensor_of[s] for old, s in zip(call.node.input_tensors, call.inputs)})
        out = new(*args, **kwargs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for s, t in zip(call.outputs, outs):
            tensor_of[s] = t
    small = keras.Model(new_inputs, [tensor_of[s] for s in graph.output_spaces] if len(graph.output_spaces) > 1
                        else tensor_of[graph.output_spaces[0]], name=name or f"{model.name}_compact")
    for new, weights, old in to_set:
        if weights is None:
            if old.weights:
                new.set_weights(old.get_weights())
        else:
            new.set_weights([np.asarray(w, dtype=v.dtype) for w, v in zip(weights, new.weights)])
    if verify:
        _verify(model, small, atol)
    return small, report


def _holds_kernels(layer):
    """Whether a layer kept whole has kernels of its own (a convolution the graph could not follow,
    MultiHeadAttention, an RNN, ...): the report names it with the reason."""
    return any(w.path.split("/")[-1].endswith(("kernel", "embeddings")) for w in layer.weights)


def _verify(model, small, atol):
    rng = np.random.default_rng(0)
    tensors = model.inputs if not isinstance(model, keras.Sequential) else model._functional.inputs
    inputs = [rng.integers(0, 2, (2, *t.shape[1:])).astype(t.dtype) if "int" in str(t.dtype)
              else rng.standard_normal((2, *t.shape[1:])).astype("float32") for t in tensors]
    feed = inputs if len(inputs) > 1 else inputs[0]
    with warnings.catch_warnings():  # Keras warns when a one-input model declared as a list gets a tensor
        warnings.simplefilter("ignore", UserWarning)
        expected = model(feed, training=False)
        got = small(feed, training=False)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    got = got if isinstance(got, (list, tuple)) else [got]
    for index, (a, b) in enumerate(zip(expected, got)):
        a, b = np.asarray(ops.convert_to_numpy(a)), np.asarray(ops.convert_to_numpy(b))
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        difference = float(np.max(np.abs(a - b))) if a.size else 0.0
        if not difference <= atol * max(scale, 1e-30):
            raise CompactionError(f"{model.name}: the compacted model's output {index} differs from the original's by "
                                  f"{difference:.3g} (scale {scale:.3g}); no model is returned")

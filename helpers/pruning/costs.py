"""What a network costs and how sparse it is: parameters, FLOPs, latency, saved size, sparsity.

Each cost takes a model and returns a number, so any of them (or a user's own callable) can serve
as the budget of budget-constrained pruning (notebook 08); ``ParameterFraction`` and
``FlopFraction`` (``make_cost(kind, model)``) are the two named ones, fractions of the dense
network. Every count of nonzero weights in the
package goes through ``count_nonzero``; every parameter count through ``parameters``, which
says explicitly whether biases count (``include_bias``).
"""

from __future__ import annotations

import gzip
import os
import time

import keras
import numpy as np
from keras import layers as klayers
from keras import ops

from ..layers import PRUNABLE, all_layers, dense_layers, kernel_weights, skipped_layers
from .selection import output_layers, prunable_layers


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


def flops(model, nonzero_only=False, unknown="raise"):
    """Multiply-accumulates (MACs) of one forward pass of one example.

    The model's graph is walked node by node (nested Functional and Sequential models are walked
    into, once per call), so each layer is counted at the shapes it is applied to. What counts:

    - ``Dense``: kernel entries x the input positions it is applied at (the product of the input's
      dims other than batch and last; 1 for a flat input, ``tokens`` for a (tokens, d) input).
    - ``Conv1D/2D/3D`` and ``DepthwiseConv1D/2D``: output positions x kernel entries (the kernel
      already holds ``in_channels / groups`` input channels per filter; zero padding is counted
      as a dense kernel computes it).
    - ``SeparableConv1D/2D``: output positions x (depthwise + pointwise kernel entries).
    - ``Conv1D/2D/3DTranspose``: input positions x kernel entries (every input value meets every
      kernel entry; products that land in cropped padding are counted too).
    - ``EinsumDense``: from its equation, the product of the sizes of all its indices.
    - ``MultiHeadAttention`` / ``GroupQueryAttention``: the query/key/value (and gate) and output
      projections as EinsumDense, plus QK^T (``heads x T x S x key_dim``) and attention x V
      (``heads x T x S x value_dim``); ``Attention``, ``AdditiveAttention``, ``Dot`` and the
      ``keras.ops`` ``matmul`` / ``einsum`` nodes of a functional graph count their products
      (other ``keras.ops`` nodes have no weights and count 0).
    - ``SimpleRNN``, ``LSTM``, ``GRU`` (and ``RNN`` of their cells, ``StackedRNNCells``,
      ``ConvLSTM1D/2D/3D``): per time step, kernel + recurrent-kernel entries, i.e.
      ``gates x units x (input_dim + units)`` with 1, 4 and 3 gates (times the output positions
      for ConvLSTM), times the time steps; the elementwise gate products are not counted.
      ``Bidirectional`` counts both directions, ``TimeDistributed`` its layer per step.
    - ``Embedding`` 0 (a lookup; a ``ReversibleEmbedding`` called with ``reverse=True`` is a
      matmul); normalizations, pooling, activations, merges, reshapes: 0 (no weight x activation
      products).

    Biases, activations and other elementwise work are not counted. With ``nonzero_only`` a zero
    weight costs nothing: each kernel counts its nonzero entries x the positions they are applied
    at (the ideal a sparse kernel could reach; activation x activation products such as QK^T
    always count); otherwise every weight counts (what a dense kernel does).

    A layer with weights whose cost is not known raises ``ValueError`` naming it, so the count is
    never silently short; ``unknown="ignore"`` counts such layers as 0 instead.
    """
    if unknown not in ("raise", "ignore"):
        raise ValueError(f"unknown must be 'raise' or 'ignore', got {unknown!r}")
    return int(_model_macs(model, nonzero_only, unknown))


class _Shape(tuple):
    """The shape (batch axis first) of a tensor argument of a layer call."""


class _Call:
    """One call of a layer: its arguments (tensors replaced by their ``_Shape``) and outputs."""

    def __init__(self, args, kwargs=None, outputs=()):
        self.args, self.kwargs, self.outputs = tuple(args), dict(kwargs or {}), [_Shape(s) for s in outputs]

    @property
    def inputs(self):
        return _shapes_in((self.args, self.kwargs))

    def arg(self, position, name, default=None):
        if len(self.args) > position:
            return self.args[position]
        return self.kwargs.get(name, default)


def _shapes_in(structure):
    if isinstance(structure, _Shape):
        return [structure]
    if isinstance(structure, dict):
        structure = list(structure.values())
    if isinstance(structure, (list, tuple)):
        return [shape for item in structure for shape in _shapes_in(item)]
    return []


def _model_macs(model, nonzero_only, unknown, nested=False):
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        if nested and unknown == "ignore":
            return 0
        raise ValueError(
            f"flops needs the layer graph of {model.name!r} ({type(model).__name__}) to know the shapes each "
            "layer is applied to: build it as a functional model, or a Sequential model with a known input shape"
            + (" (or pass unknown='ignore' to count this nested model as 0)" if nested else ""))
    total = 0
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.operation is None or node.is_input:
                continue
            args, kwargs = node.arguments.convert(
                lambda x: _Shape(x.shape) if isinstance(x, keras.KerasTensor) else x)
            call = _Call(args, kwargs, [tensor.shape for tensor in node.outputs])
            total += _layer_macs(node.operation, call, nonzero_only, unknown)
    return total


def _dims(dims, layer, what):
    """The dims as ints; a clear error if one is unknown (a variable-size input)."""
    dims = tuple(dims)
    if any(d is None for d in dims):
        raise ValueError(f"flops: the {what} of layer {layer.name!r} ({type(layer).__name__}) has an undefined "
                         f"dimension {dims}; build the model with a fixed input shape")
    return tuple(int(d) for d in dims)


def _positions(layer, shape, what, channels_first=False):
    """The product of a shape's dims other than batch and channels (the channel axis is last,
    or second for ``channels_first``)."""
    return int(np.prod(_dims(shape[2:] if channels_first else shape[1:-1], layer, what), dtype=np.int64))


def _entries(weight, nonzero_only):
    """The kernel entries that each cost one MAC wherever the kernel is applied."""
    return count_nonzero(weight) if nonzero_only else int(np.prod(weight.shape, dtype=np.int64))


def _one_example(layer, shape):
    """A batched shape with the batch axis set to 1 (the other dims must be known)."""
    return (1, *_dims(shape[1:], layer, "input"))


def _einsum_letters(spec, rank):
    """The indices of one einsum operand; the axes of ``...`` are named by their distance from the
    ellipsis' right end, so that broadcast operands share names."""
    if "..." not in spec:
        return list(spec)
    before, after = spec.split("...")
    n = rank - len(before) - len(after)
    return [*before, *[("...", n - 1 - i) for i in range(n)], *after]


def _einsum(equation, shapes):
    """MACs of an einsum of operands with these (fully known) shapes, contracted pairwise left to
    right, and the output shape. Two operands: the product of the sizes of all indices."""
    lhs, output = equation.replace(" ", "").split("->")
    specs = [_einsum_letters(spec, len(shape)) for spec, shape in zip(lhs.split(","), shapes)]
    sizes = {}
    for spec, shape in zip(specs, shapes):
        for letter, size in zip(spec, shape):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    ellipsis = max([sum(isinstance(l, tuple) for l in spec) for spec in specs] + [0])
    out = _einsum_letters(output, len(output.replace("...", "")) + ellipsis)
    macs, current = 0, set(specs[0])
    for i, spec in enumerate(specs[1:], start=1):
        joined = current | set(spec)
        macs += int(np.prod([sizes[l] for l in joined], dtype=np.int64))
        later = set(out).union(*[set(s) for s in specs[i + 1:]])
        current = joined & later
    return macs, tuple(sizes[l] for l in out)


def _einsum_dense(layer, input_shape, nonzero_only):
    """An EinsumDense applied to an input of this (batched) shape: its MACs (kernel entries x the
    product of the sizes of the indices the kernel does not have) and its output shape, batch 1."""
    x = _one_example(layer, input_shape)
    lhs = layer.equation.replace(" ", "").split("->")[0]
    x_spec, kernel_spec = lhs.split(",")
    kernel_letters = set(_einsum_letters(kernel_spec, len(layer.kernel.shape)))
    sizes = dict(zip(_einsum_letters(x_spec, len(x)), x))
    positions = int(np.prod([s for l, s in sizes.items() if l not in kernel_letters], dtype=np.int64))
    return positions * _entries(layer.kernel, nonzero_only), _einsum(layer.equation, [x, layer.kernel.shape])[1]


def _attention_macs(layer, call, nonzero_only, grouped):
    """MultiHeadAttention / GroupQueryAttention: projections, QK^T and attention x V."""
    query, value = call.arg(0, "query"), call.arg(1, "value")
    key = call.arg(2, "key") or value
    total = 0

    def project(dense, shape):
        nonlocal total
        macs, projected = _einsum_dense(dense, shape, nonzero_only)
        total += macs
        return projected

    if getattr(layer, "use_gate" if grouped else "_use_gate", False):
        project(layer._gate_dense, query)
    q, k, v = project(layer._query_dense, query), project(layer._key_dense, key), project(layer._value_dense, value)
    if grouped:  # key and value heads are repeated up to the query heads
        k, v = (*k[:-2], layer.num_query_heads, k[-1]), (*v[:-2], layer.num_query_heads, v[-1])
    macs, scores = _einsum(layer._dot_product_equation, [q, k] if grouped else [k, q])
    total += macs
    macs, attended = _einsum(layer._combine_equation, [scores, v])
    total += macs
    project(layer._output_dense, attended)
    return total


def _conv_length(size, kernel, stride, dilation, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _rnn_step_macs(layer, cell, x, nonzero_only, unknown):
    """MACs of one time step of an RNN cell fed the per-step input of shape ``x[2:]``."""
    L = klayers
    if isinstance(cell, L.StackedRNNCells):
        return sum(_rnn_step_macs(layer, c, x, nonzero_only, unknown) for c in cell.cells)
    if isinstance(cell, (L.SimpleRNNCell, L.LSTMCell, L.GRUCell)):
        return _entries(cell.kernel, nonzero_only) + _entries(cell.recurrent_kernel, nonzero_only)
    if isinstance(layer, (L.ConvLSTM1D, L.ConvLSTM2D, L.ConvLSTM3D)):
        spatial = _dims(x[3:] if cell.data_format == "channels_first" else x[2:-1], layer, "input")
        positions = int(np.prod([_conv_length(n, k, s, d, cell.padding) for n, k, s, d in zip(
            spatial, cell.kernel_size, cell.strides, cell.dilation_rate)], dtype=np.int64))
        return positions * (_entries(cell.kernel, nonzero_only) + _entries(cell.recurrent_kernel, nonzero_only))
    return _unknown_macs(cell, unknown, owner=layer)


def _unknown_macs(layer, unknown, owner=None):
    if not layer.weights or unknown == "ignore":
        return 0
    where = f" in layer {owner.name!r} ({type(owner).__name__})" if owner is not None else ""
    raise ValueError(
        f"flops does not know the multiply-accumulates of layer {layer.name!r} of type "
        f"{type(layer).__module__}.{type(layer).__name__}{where}, which has weights; pass unknown='ignore' "
        "to count it as 0 (an undercount), or make it a functional keras.Model of known layers")


def _layer_macs(layer, call, nonzero_only, unknown):
    """MACs of one call of one layer (or keras op) of a functional graph."""
    L = klayers
    if isinstance(layer, keras.Model):
        return _model_macs(layer, nonzero_only, unknown, nested=True)
    if not isinstance(layer, L.Layer):  # a keras.ops operation in a functional graph: no weights
        name = type(layer).__name__
        if name == "Matmul" and call.outputs and len(call.outputs[0]) > 1:
            x = call.arg(0, "x1")
            depth = _dims((x if isinstance(x, _Shape) else np.shape(x))[-1:], layer, "first operand")[0]
            return _positions(layer, (*call.outputs[0], 1), "output") * depth
        if name == "Einsum":
            operands = [_one_example(layer, a) if isinstance(a, _Shape) else tuple(np.shape(a)) for a in call.args]
            return _einsum(layer.subscripts, operands)[0] if len(operands) > 1 else 0
        return 0
    if isinstance(layer, L.Dense):
        return _positions(layer, call.inputs[0], "input") * _entries(layer.kernel, nonzero_only)
    if isinstance(layer, L.EinsumDense):
        return _einsum_dense(layer, call.inputs[0], nonzero_only)[0]
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D, L.DepthwiseConv2D)):
        first = layer.data_format == "channels_first"
        return _positions(layer, call.outputs[0], "output", first) * _entries(layer.kernel, nonzero_only)
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        first = layer.data_format == "channels_first"
        return _positions(layer, call.outputs[0], "output", first) * (
            _entries(layer.depthwise_kernel, nonzero_only) + _entries(layer.pointwise_kernel, nonzero_only))
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        first = layer.data_format == "channels_first"
        return _positions(layer, call.inputs[0], "input", first) * _entries(layer.kernel, nonzero_only)
    if isinstance(layer, L.MultiHeadAttention):
        return _attention_macs(layer, call, nonzero_only, grouped=False)
    if isinstance(layer, _optional("GroupQueryAttention")):
        return _attention_macs(layer, call, nonzero_only, grouped=True)
    if isinstance(layer, L.Attention):  # AdditiveAttention too
        inputs = call.arg(0, "inputs")
        query, value = inputs[0], inputs[1]
        dim, depth = _dims((query[-1], value[-1]), layer, "input")
        keys = _dims(value[-2:-1], layer, "value")[0]
        additive = isinstance(layer, L.AdditiveAttention)
        scores = dim if (layer.use_scale if additive else layer.score_mode == "dot") else 0
        return _positions(layer, query, "query") * keys * (scores + depth)
    if isinstance(layer, L.Dot):
        x, y = call.inputs[:2]
        axes = layer.axes if isinstance(layer.axes, (list, tuple)) else (layer.axes, layer.axes)
        x_dims, y_dims = _dims(x[1:], layer, "input"), _dims(y[1:], layer, "input")
        contracted = y_dims[axes[1] % len(y) - 1]
        return int(np.prod(x_dims, dtype=np.int64)) * (int(np.prod(y_dims, dtype=np.int64)) // contracted)
    if isinstance(layer, _optional("ReversibleEmbedding")):
        if not call.arg(1, "reverse", False):
            return 0
        kernel = layer.embeddings if layer.tie_weights else layer.reverse_embeddings
        return _positions(layer, call.inputs[0], "input") * _entries(kernel, nonzero_only)
    if isinstance(layer, L.RNN):
        x = call.inputs[0]
        steps = _dims(x[1:2], layer, "input (time steps)")[0]
        return steps * _rnn_step_macs(layer, layer.cell, x, nonzero_only, unknown)
    if isinstance(layer, L.Bidirectional):
        inner = _Call(call.args[:1])
        return sum(_layer_macs(rnn, inner, nonzero_only, unknown) for rnn in (layer.forward_layer, layer.backward_layer))
    if isinstance(layer, L.TimeDistributed):
        x = call.inputs[0]
        steps = _dims(x[1:2], layer, "input (time steps)")[0]
        inner = _Call([_Shape((x[0], *x[2:]))], outputs=[(o[0], *o[2:]) for o in call.outputs])
        return steps * _layer_macs(layer.layer, inner, nonzero_only, unknown)
    if isinstance(layer, _optional("SpectralNormalization")):
        return _layer_macs(layer.layer, call, nonzero_only, unknown)
    if isinstance(layer, _NO_MACS):
        return 0
    return _unknown_macs(layer, unknown)


def _optional(name):
    """A keras layer class this Keras version may lack (then an empty tuple: matches nothing)."""
    return getattr(klayers, name, ())


# Layers with weights but no weight x activation products: lookups and elementwise scalings.
_NO_MACS = tuple(getattr(klayers, name) for name in (
    "Embedding", "BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization",
    "UnitNormalization", "Normalization", "PReLU") if hasattr(klayers, name))


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
    model.save(path)
    if not compress:
        return os.path.getsize(path)
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))


def sparsity(model, layers=None, include_output=True):
    """Fraction of exactly-zero kernel entries per layer and overall (key ``"total"``).

    Every connection weight of every layer counts (``helpers.layers.kernel_weights``: Dense,
    convolutions of every kind, both kernels of a separable one, embeddings, attention
    projections, RNN kernels), keyed by layer key (``"block/fc"``, ``"mha/query"``); ``layers``
    (names or keys) restricts it, ``include_output=False`` leaves out the layers producing the
    model's outputs. ``"skipped"`` lists the layers with trainable weights none of which is a
    known kernel (a custom layer, PReLU): what neither this count nor unstructured pruning sees.
    """
    refs = kernel_weights(model)
    if layers is not None:
        wanted = {getattr(item, "name", item) for item in layers}
        refs = [ref for ref in refs if ref.layer_key in wanted or ref.layer.name in wanted]
        missing = wanted - {ref.layer_key for ref in refs} - {ref.layer.name for ref in refs}
        if missing:
            raise ValueError(f"no kernel layer named {sorted(missing)}")
    elif not include_output:
        outputs = set(output_layers(model))
        refs = [ref for ref in refs if ref.layer.name not in outputs]
    zeros, sizes = {}, {}
    for ref in refs:
        size = int(np.prod(ref.variable.shape))
        zeros[ref.layer_key] = zeros.get(ref.layer_key, 0) + size - count_nonzero(ref.variable)
        sizes[ref.layer_key] = sizes.get(ref.layer_key, 0) + size
    report = {key: zeros[key] / sizes[key] for key in zeros}
    report["total"] = sum(zeros.values()) / max(1, sum(sizes.values()))
    report["skipped"] = skipped_layers(model)
    return report


def effective_sparsity(model):
    """Fraction of kernel weights of the Dense/Conv2D layers that cannot affect the output.

    Besides exact zeros, a weight is dead if it reads a dead unit (a unit whose incoming kernel
    and bias are all zero and whose activation maps 0 to 0, e.g. ReLU), or feeds a unit whose
    outgoing weights are all dead. This is why unit pruning at the same nominal k removes far more
    than weight pruning (project 002). Only sequential chains of Dense layers are analysed exactly;
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
    """Fraction of the prunable kernels' weights that are nonzero (project 004's cost, /100)."""

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

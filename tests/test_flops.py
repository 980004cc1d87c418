"""``costs.flops`` against independent counts of multiply-accumulates (MACs).

Three independent counts, none of which calls the implementation's helpers:

- a numpy reference forward pass per layer type, written with explicit loops, that reproduces
  the layer's output (checked against Keras) and counts every multiplication it performs (and
  those by a nonzero weight, for ``nonzero_only``);
- TensorFlow's profiler (``tf.compat.v1.profiler``: registered FLOPs of Conv2D, Conv3D,
  DepthwiseConv2dNative, MatMul, Conv2DBackpropInput, = 2 x MACs) on the frozen graph;
- shape arithmetic written out by hand in each test.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import models
from helpers.layers import all_layers
from helpers.pruning import costs

L = keras.layers


@pytest.fixture
def rng():
    keras.utils.set_random_seed(0)
    return np.random.default_rng(0)


# --- independent counters ---------------------------------------------------------------------


class Counter:
    """Counts the multiplications of a reference forward pass: all of them, and those whose
    weight operand is nonzero (an activation x activation product always counts)."""

    def __init__(self):
        self.all = self.nonzero = 0

    def dot(self, x, w, weight=True):
        x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
        assert x.shape == w.shape
        self.all += w.size
        self.nonzero += int(np.count_nonzero(w)) if weight else w.size
        return float(np.sum(x * w))


def einsum_ref(equation, a, b, counter, weight=None):
    """An einsum of two operands by an explicit loop over every index combination, one counted
    multiplication each; ``weight`` (0 or 1) names the operand that is a weight."""
    (spec_a, spec_b), spec_out = equation.split("->")[0].split(","), equation.split("->")[1]
    sizes = dict(zip(spec_a, a.shape)) | dict(zip(spec_b, b.shape))
    letters = sorted(sizes)
    out = np.zeros([sizes[c] for c in spec_out])
    for combo in itertools.product(*[range(sizes[c]) for c in letters]):
        at = dict(zip(letters, combo))
        u, v = a[tuple(at[c] for c in spec_a)], b[tuple(at[c] for c in spec_b)]
        if weight == 0:
            product = counter.dot([v], [u])
        else:
            product = counter.dot([u], [v], weight=weight == 1)
        out[tuple(at[c] for c in spec_out)] += product
    return out


def dense_ref(x, kernel, bias, counter):
    """x: (..., in) of one example."""
    flat = x.reshape(-1, x.shape[-1])
    y = np.array([[counter.dot(row, kernel[:, j]) for j in range(kernel.shape[1])] for row in flat])
    return (y + bias).reshape(*x.shape[:-1], kernel.shape[1])


def _same_padding(size, kernel, stride, dilation, padding):
    span = (kernel - 1) * dilation + 1
    out = (size - span) // stride + 1 if padding == "valid" else -(-size // stride)
    total = max((out - 1) * stride + span - size, 0) if padding == "same" else 0
    return out, (total // 2, total - total // 2)


def _patches(x, kernel_size, strides, dilation, padding):
    """Yield (output position, patch of shape (*kernel_size, channels)) of a channels-last input."""
    nd = len(kernel_size)
    outs, pads = zip(*[_same_padding(n, k, s, d, padding)
                       for n, k, s, d in zip(x.shape[:nd], kernel_size, strides, dilation)])
    xp = np.pad(x, list(pads) + [(0, 0)])
    for pos in np.ndindex(*outs):
        index = tuple(slice(p * s, p * s + (k - 1) * d + 1, d) for p, s, k, d in zip(pos, strides, kernel_size, dilation))
        yield outs, pos, xp[index]


def conv_ref(x, kernel, bias, strides, dilation, padding, groups, counter):
    """Grouped N-d convolution, kernel (*k, in/groups, out)."""
    nd = x.ndim - 1
    k, cin, cout = kernel.shape[:nd], kernel.shape[nd], kernel.shape[-1]
    per_group = cout // groups
    y = None
    for outs, pos, patch in _patches(x, k, strides, dilation, padding):
        if y is None:
            y = np.zeros((*outs, cout))
        for f in range(cout):
            g = f // per_group
            y[pos + (f,)] = counter.dot(patch[..., g * cin:(g + 1) * cin], kernel[..., f])
    return y + bias


def depthwise_ref(x, kernel, strides, dilation, padding, counter):
    """kernel (*k, channels, multiplier); output channel c * multiplier + m."""
    nd = x.ndim - 1
    k, channels, mult = kernel.shape[:nd], kernel.shape[nd], kernel.shape[nd + 1]
    y = None
    for outs, pos, patch in _patches(x, k, strides, dilation, padding):
        if y is None:
            y = np.zeros((*outs, channels * mult))
        for c in range(channels):
            for m in range(mult):
                y[pos + (c * mult + m,)] = counter.dot(patch[..., c], kernel[..., c, m])
    return y


def conv_transpose_ref(x, kernel, bias, strides, padding, counter):
    """Transposed convolution by scattering: every input value meets every kernel entry;
    kernel (*k, out, in). Output length n*s (same) or n*s + max(k - s, 0) (valid), as Keras."""
    nd = x.ndim - 1
    k, cout = kernel.shape[:nd], kernel.shape[nd]
    full = [(n - 1) * s + kk for n, s, kk in zip(x.shape[:nd], strides, k)]
    outs = [n * s if padding == "same" else n * s + max(kk - s, 0) for n, s, kk in zip(x.shape[:nd], strides, k)]
    before = [max(f - o, 0) // 2 if padding == "same" else 0 for f, o in zip(full, outs)]
    buffer = np.zeros([max(f, b + o) for f, b, o in zip(full, before, outs)] + [cout])
    for i in np.ndindex(*x.shape[:nd]):
        for t in np.ndindex(*k):
            for f in range(cout):
                buffer[tuple(a * s + b for a, s, b in zip(i, strides, t)) + (f,)] += counter.dot(x[i], kernel[t + (f,)])
    return buffer[tuple(slice(b, b + o) for b, o in zip(before, outs))] + bias


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def rnn_ref(kind, x, kernel, recurrent, bias, counter):
    """SimpleRNN / LSTM / GRU (Keras defaults: tanh, sigmoid gates; GRU reset_after) over
    x (steps, in); each step: one dot per (gate, unit) with the kernel and the recurrent kernel."""
    gates = {"simple": 1, "lstm": 4, "gru": 3}[kind]
    units = recurrent.shape[0]
    h, c = np.zeros(units), np.zeros(units)

    def matvec(v, m):
        return np.array([counter.dot(v, m[:, j]) for j in range(gates * units)])

    for xt in x:
        if kind == "simple":
            h = np.tanh(matvec(xt, kernel) + matvec(h, recurrent) + bias)
        elif kind == "lstm":
            i, f, g, o = np.split(matvec(xt, kernel) + matvec(h, recurrent) + bias, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        else:
            xz, xr, xh = np.split(matvec(xt, kernel) + bias[0], 3)
            hz, hr, hh = np.split(matvec(h, recurrent) + bias[1], 3)
            z, r = sigmoid(xz + hz), sigmoid(xr + hr)
            h = z * h + (1 - z) * np.tanh(xh + r * hh)
    return h


def profiled_macs(model):
    """Half the FLOPs TensorFlow's profiler registers for the conv/matmul ops of the model's
    frozen graph on one example."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's profiler needs the TensorFlow backend")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = convert_variables_to_constants_v2(
        tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)).graph
    kinds = {op.name: op.type for op in graph.get_operations()}
    counted = {"Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "Conv2DBackpropInput"}
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    tree = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="scope",
                                         options=options)
    found = {}

    def walk(node):
        if kinds.get(node.name) in counted:
            found[node.name] = node.float_ops
        for child in node.children:
            walk(child)

    walk(tree)
    assert found, "the profiler registered no conv/matmul op"
    assert all(v % 2 == 0 for v in found.values())
    return sum(found.values()) // 2


def sparsify(rng, *variables, fraction=0.5):
    """Zero about ``fraction`` of each variable's entries at random."""
    for variable in variables:
        value = variable.numpy()
        value[rng.random(value.shape) < fraction] = 0
        variable.assign(value)


def one(model, x):
    return keras.ops.convert_to_numpy(model(x[None], training=False))[0]


def check(model, counter):
    assert costs.flops(model) == counter.all
    assert costs.flops(model, nonzero_only=True) == counter.nonzero


# --- layer by layer ---------------------------------------------------------------------------


def test_dense_on_any_rank(rng):
    inputs = keras.Input((5, 3, 7))
    model = keras.Model(inputs, L.Dense(4, name="d")(inputs))
    layer = model.get_layer("d")
    sparsify(rng, layer.kernel)
    x = rng.normal(size=(5, 3, 7)).astype("float32")
    counter = Counter()
    np.testing.assert_allclose(one(model, x), dense_ref(x, layer.kernel.numpy(), layer.bias.numpy(), counter),
                               rtol=1e-5, atol=1e-5)
    assert counter.all == 5 * 3 * 7 * 4  # every (position, in, out)
    check(model, counter)
    assert profiled_macs(model) == counter.all


@pytest.mark.parametrize("rank, kwargs, shape", [
    (1, dict(filters=4, kernel_size=3, strides=2, padding="same"), (9, 3)),
    (1, dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2), (9, 2)),
    (2, dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2), (7, 7, 6)),
    (2, dict(filters=3, kernel_size=(2, 3), dilation_rate=2), (7, 8, 2)),
    (3, dict(filters=2, kernel_size=2, strides=(1, 2, 1), padding="same"), (4, 5, 3, 2)),
])
def test_convolutions(rng, rank, kwargs, shape):
    inputs = keras.Input(shape)
    layer = [L.Conv1D, L.Conv2D, L.Conv3D][rank - 1](name="c", **kwargs)
    model = keras.Model(inputs, layer(inputs))
    sparsify(rng, layer.kernel)
    x = rng.normal(size=shape).astype("float32")
    counter = Counter()
    ref_kwargs = dict(strides=layer.strides, dilation=layer.dilation_rate, padding=layer.padding,
                      groups=layer.groups)
    ref_x = x
    if layer.padding == "causal":  # left padding by the kernel's span, then valid
        ref_x = np.pad(x, [((layer.kernel_size[0] - 1) * layer.dilation_rate[0], 0), (0, 0)])
        ref_kwargs["padding"] = "valid"
    y = conv_ref(ref_x, layer.kernel.numpy(), layer.bias.numpy(), counter=counter, **ref_kwargs)
    np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
    check(model, counter)
    out_positions = int(np.prod(layer.output.shape[1:-1]))
    kernel = int(np.prod(layer.kernel_size)) * shape[-1] // layer.groups * layer.filters
    assert counter.all == out_positions * kernel
    # TF runs a dilated conv on a space-to-batch padded input, a grouped one in a nested function
    if max(layer.dilation_rate) == 1 and layer.groups == 1:
        assert profiled_macs(model) == counter.all


@pytest.mark.parametrize("rank, kwargs, shape", [
    (1, dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2), (9, 3)),
    (2, dict(kernel_size=3, padding="same", depth_multiplier=1), (6, 6, 4)),
    (2, dict(kernel_size=(3, 2), strides=2, depth_multiplier=3), (7, 6, 2)),
])
def test_depthwise_convolutions(rng, rank, kwargs, shape):
    inputs = keras.Input(shape)
    layer = [L.DepthwiseConv1D, L.DepthwiseConv2D][rank - 1](name="dw", use_bias=False, **kwargs)
    model = keras.Model(inputs, layer(inputs))
    sparsify(rng, layer.kernel)
    x = rng.normal(size=shape).astype("float32")
    counter = Counter()
    y = depthwise_ref(x, layer.kernel.numpy(), layer.strides, layer.dilation_rate, layer.padding, counter)
    np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
    check(model, counter)
    out_positions = int(np.prod(layer.output.shape[1:-1]))
    assert counter.all == out_positions * int(np.prod(layer.kernel_size)) * shape[-1] * layer.depth_multiplier
    assert profiled_macs(model) == counter.all


@pytest.mark.parametrize("rank, shape", [(1, (9, 3)), (2, (7, 6, 3))])
def test_separable_convolutions(rng, rank, shape):
    inputs = keras.Input(shape)
    layer = [L.SeparableConv1D, L.SeparableConv2D][rank - 1](
        5, 3, strides=2, padding="same", depth_multiplier=2, name="sep")
    model = keras.Model(inputs, layer(inputs))
    sparsify(rng, layer.depthwise_kernel, layer.pointwise_kernel)
    x = rng.normal(size=shape).astype("float32")
    counter = Counter()
    depthwise = depthwise_ref(x, layer.depthwise_kernel.numpy(), layer.strides, layer.dilation_rate,
                              layer.padding, counter)
    y = conv_ref(depthwise, layer.pointwise_kernel.numpy(), layer.bias.numpy(), (1,) * rank, (1,) * rank,
                 "valid", 1, counter)
    np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
    check(model, counter)
    out_positions = int(np.prod(layer.output.shape[1:-1]))
    assert counter.all == out_positions * (3 ** rank * shape[-1] * 2 + shape[-1] * 2 * 5)
    assert profiled_macs(model) == counter.all


@pytest.mark.parametrize("rank, kwargs, shape, profile", [
    (1, dict(filters=3, kernel_size=3, strides=2, padding="same"), (5, 2), True),
    (2, dict(filters=3, kernel_size=3, strides=2, padding="same"), (4, 3, 2), True),
    (2, dict(filters=2, kernel_size=(3, 2), strides=(1, 3), padding="valid"), (3, 4, 2), False),
    (3, dict(filters=2, kernel_size=2, strides=2, padding="same"), (3, 2, 3, 2), False),
])
def test_transposed_convolutions(rng, rank, kwargs, shape, profile):
    inputs = keras.Input(shape)
    layer = [L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose][rank - 1](name="t", **kwargs)
    model = keras.Model(inputs, layer(inputs))
    sparsify(rng, layer.kernel)
    x = rng.normal(size=shape).astype("float32")
    counter = Counter()
    y = conv_transpose_ref(x, layer.kernel.numpy(), layer.bias.numpy(), layer.strides, layer.padding, counter)
    np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
    check(model, counter)
    in_positions = int(np.prod(shape[:-1]))
    assert counter.all == in_positions * int(np.prod(layer.kernel_size)) * shape[-1] * layer.filters
    if profile:  # TF's formula for Conv2DBackpropInput is exact for 'same' padding
        assert profiled_macs(model) == counter.all


@pytest.mark.parametrize("equation, output_shape, shape, reference, macs", [
    ("abc,cde->abde", (3, 2, 4), (3, 5), "bc,cde->bde", 3 * 5 * 2 * 4),  # b * c * d * e
    ("ab,bc->ac", 4, (6,), "b,bc->c", 6 * 4),
    ("abcd,cde->abe", (3, 4), (3, 2, 5), "bcd,cde->be", 3 * 2 * 5 * 4),
    ("...b,bc->...c", 4, (2, 3, 5), "yzb,bc->yzc", 2 * 3 * 5 * 4),
])
def test_einsum_dense(rng, equation, output_shape, shape, reference, macs):
    inputs = keras.Input(shape)
    layer = L.EinsumDense(equation, output_shape=output_shape, name="e")
    model = keras.Model(inputs, layer(inputs))
    sparsify(rng, layer.kernel)
    x = rng.normal(size=shape).astype("float32")
    counter = Counter()
    y = einsum_ref(reference, x, layer.kernel.numpy(), counter, weight=1)  # the equation without batch
    np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
    check(model, counter)
    assert counter.all == macs


def _mha_ref(layer, query, value, counter):
    """Multi-head attention of one example from the layer's weights: projections, QK^T / sqrt(d),
    softmax, attention x V, output projection; equations written here, not read from the layer."""
    def project(dense, x):
        return einsum_ref("tf,fhk->thk", x, dense.kernel.numpy(), counter, weight=1) + dense.bias.numpy()

    q = project(layer.query_dense, query) / np.sqrt(layer.key_dense.kernel.shape[-1])
    k, v = project(layer.key_dense, value), project(layer.value_dense, value)
    scores = einsum_ref("thk,shk->hts", q, k, counter)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    attended = einsum_ref("hts,shv->thv", scores, v, counter)
    out = layer.output_dense
    return einsum_ref("thv,hvo->to", attended, out.kernel.numpy(), counter, weight=1) + out.bias.numpy()


def test_multi_head_attention_against_a_reference_forward_pass(rng):
    query_in, value_in = keras.Input((3, 5)), keras.Input((4, 6))
    layer = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2, name="mha")
    model = keras.Model([query_in, value_in], layer(query_in, value_in))
    sparsify(rng, layer.query_dense.kernel, layer.value_dense.kernel, layer.output_dense.kernel)
    query, value = rng.normal(size=(3, 5)), rng.normal(size=(4, 6))
    counter = Counter()
    y = _mha_ref(layer, query, value, counter)
    got = keras.ops.convert_to_numpy(model([query[None].astype("float32"), value[None].astype("float32")]))[0]
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-5)
    check(model, counter)
    # by hand: Q 3*5*2*3, K 4*6*2*3, V 4*6*2*2, QK^T 2*3*4*3, AV 2*3*4*2, out 3*2*2*5
    assert counter.all == 90 + 144 + 96 + 72 + 48 + 60


def test_self_attention_with_key_and_gqa_and_keras_attention_layers():
    x = keras.Input((6, 8))
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    y = mha(x, x, x)  # explicit key
    gqa = L.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2, name="gqa")
    z = gqa(x, x)
    dot = L.Attention(name="att")([x, x])
    additive = L.AdditiveAttention(name="add")([x, x])
    model = keras.Model(x, [y, z, dot, additive])
    mha_count = 3 * 6 * 8 * 2 * 4 + 2 * (2 * 6 * 6 * 4) + 6 * 2 * 4 * 8
    gqa_count = 6 * 8 * 4 * 4 + 2 * (6 * 8 * 2 * 4) + 2 * (4 * 6 * 6 * 4) + 6 * 4 * 4 * 8
    attention_count = 6 * 6 * 8 * 2  # scores and weights x values; additive: its scale dot too
    assert costs.flops(model) == mha_count + gqa_count + attention_count + attention_count
    gated = L.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3, use_gate=True)
    gated_count = 6 * 8 * 2 * 4 * 2 + 2 * (6 * 8 * 2 * 3) + 2 * 6 * 6 * (4 + 3) + 6 * 2 * 3 * 8  # gate: like V
    assert costs.flops(keras.Model(x, gated(x, x))) == gated_count


def test_recurrent_layers_against_reference_forward_passes(rng):
    steps, features, units = 4, 3, 5
    x = rng.normal(size=(steps, features)).astype("float32")
    for kind, cls, gates in (("simple", L.SimpleRNN, 1), ("lstm", L.LSTM, 4), ("gru", L.GRU, 3)):
        inputs = keras.Input((steps, features))
        layer = cls(units, name="r")
        model = keras.Model(inputs, layer(inputs))
        cell = layer.cell
        sparsify(rng, cell.kernel, cell.recurrent_kernel)
        counter = Counter()
        y = rnn_ref(kind, x, cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy(), counter)
        np.testing.assert_allclose(one(model, x), y, rtol=1e-5, atol=1e-5)
        check(model, counter)
        assert counter.all == steps * gates * units * (features + units)


def test_recurrent_wrappers_and_variants():
    inputs = keras.Input((7, 3))
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bi")(inputs)  # 2 directions
    x = L.GRU(2, reset_after=False, return_sequences=True, name="gru")(x)
    x = L.RNN(L.StackedRNNCells([L.SimpleRNNCell(3), L.LSTMCell(2)]), name="stack")(x)
    assert costs.flops(keras.Model(inputs, x)) == (
        7 * 2 * 4 * 4 * (3 + 4) + 7 * 3 * 2 * (8 + 2) + 7 * (3 * (2 + 3) + 4 * 2 * (3 + 2)))
    frames = keras.Input((3, 6, 6, 2))
    conv_lstm = L.ConvLSTM2D(4, 3, strides=2, padding="same", name="cl")(frames)  # 3x3 positions per step
    per_frame = L.TimeDistributed(L.Conv2D(5, 3), name="td")(frames)  # 4x4 positions per frame
    model = keras.Model(frames, [conv_lstm, per_frame])
    conv_lstm_step = 3 * 3 * (3 * 3 * 2 * 4 * 4 + 3 * 3 * 4 * 4 * 4)  # 3x3 positions x (kernel + recurrent)
    assert costs.flops(model) == 3 * conv_lstm_step + 3 * (4 * 4 * 3 * 3 * 2 * 5)


def test_embeddings_and_layers_without_macs_count_zero():
    tokens = keras.Input((10,), dtype="int32")
    x = L.Embedding(50, 8, name="emb")(tokens)
    x = L.LayerNormalization()(x)
    x = L.Dropout(0.1)(x)
    x = L.GlobalAveragePooling1D()(x)
    x = L.BatchNormalization()(x)
    x = L.PReLU()(x)
    y = L.Dense(3, name="out")(x)
    assert costs.flops(keras.Model(tokens, y)) == 8 * 3
    reversible = L.ReversibleEmbedding(50, 8, name="rev")
    hidden = reversible(tokens)
    logits = reversible(hidden, reverse=True)  # a (tokens, 8) x (8, 50) matmul
    assert costs.flops(keras.Model(tokens, logits)) == 10 * 8 * 50
    images = keras.Input((8, 8, 3))
    z = L.MaxPooling2D()(L.ReLU()(images))
    z = L.Add()([z, L.AveragePooling2D(2)(images)])
    assert costs.flops(keras.Model(images, L.Flatten()(z))) == 0


def test_keras_ops_matmul_and_einsum_nodes():
    a, b = keras.Input((3, 4)), keras.Input((4, 5))
    model = keras.Model([a, b], [keras.ops.matmul(a, b), keras.ops.einsum("bij,bjk->bik", a, b),
                                 L.Dot(axes=(2, 1))([a, b])])
    assert costs.flops(model) == 3 * 3 * 4 * 5


def test_nested_shared_and_sequential_models():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="a"), L.Dense(2, name="b")], name="inner")
    left, right = keras.Input((6,)), keras.Input((6,))
    shared = L.Dense(3, name="shared")
    merged = L.Concatenate()([inner(left), inner(right), shared(left), shared(right)])
    model = keras.Model([left, right], L.Dense(1, name="head")(merged))
    # the nested model and the shared layer run twice per example
    assert costs.flops(model) == 2 * (6 * 4 + 4 * 2) + 2 * 6 * 3 + 10 * 1
    outer = keras.Sequential([keras.Input((8, 8, 1)), keras.Sequential([L.Conv2D(2, 3)]), L.Flatten(), L.Dense(2)])
    assert costs.flops(outer) == 6 * 6 * 9 * 2 + 72 * 2


def test_unknown_layers_with_weights_raise_unless_ignored():
    class Scale(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], shape[-1]))

        def call(self, x):
            return keras.ops.matmul(x, self.w)

    class Identity(L.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(2)(Identity()(Scale(name="mystery")(inputs))))
    with pytest.raises(ValueError, match="'mystery' of type .*Scale"):
        costs.flops(model)
    assert costs.flops(model, unknown="ignore") == 4 * 2
    with pytest.raises(ValueError, match="unknown"):
        costs.flops(model, unknown="skip")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="graph"):
        costs.flops(subclassed)
    features = keras.Input((3,))
    wrapper = keras.Model(features, L.Dense(5)(subclassed(features)))
    with pytest.raises(ValueError, match="graph"):
        costs.flops(wrapper)
    assert costs.flops(wrapper, unknown="ignore") == 2 * 5


def test_channels_first_shapes():
    # counted from shapes only (TensorFlow on CPU cannot run channels_first convolutions)
    inputs = keras.Input((3, 8, 10))
    x = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")(inputs)  # 4 x 5 positions
    x = L.SeparableConv2D(2, 3, data_format="channels_first")(x)  # 2 x 3 positions
    x = L.Conv2DTranspose(5, 2, strides=2, data_format="channels_first")(x)  # 2 x 3 input positions
    assert costs.flops(keras.Model(inputs, x)) == 20 * 9 * 3 * 4 + 6 * (9 * 4 + 4 * 2) + 6 * 4 * 2 * 5


def test_undefined_dimensions_are_an_error_not_a_guess():
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, L.Dense(2, name="d")(inputs))
    with pytest.raises(ValueError, match="'d'.*undefined"):
        costs.flops(model)


# --- whole models -----------------------------------------------------------------------------


def _previous_flops(model, nonzero_only=False):
    """The implementation this one replaced: Dense kernel entries + Conv2D out_h*out_w*kernel."""
    total = 0
    for layer in all_layers(model):
        weights = (int(np.count_nonzero(layer.kernel.numpy())) if nonzero_only
                   else int(np.prod(layer.kernel.shape))) if isinstance(layer, (L.Dense, L.Conv2D)) else 0
        if isinstance(layer, L.Dense):
            total += weights
        elif isinstance(layer, L.Conv2D):
            total += int(layer.output.shape[1]) * int(layer.output.shape[2]) * weights
    return total


@pytest.mark.parametrize("build", [models.lenet5, models.vgg, lambda: models.cifar_cnn(width=0.25), models.mlp])
def test_package_models_count_as_before(rng, build):
    model = build()
    assert costs.flops(model) == _previous_flops(model)
    kernels = [layer.kernel for layer in all_layers(model) if isinstance(layer, (L.Dense, L.Conv2D))]
    sparsify(rng, *kernels[::2], fraction=0.7)
    assert costs.flops(model, nonzero_only=True) == _previous_flops(model, nonzero_only=True)
    assert costs.flops(model, nonzero_only=True) < costs.flops(model)


def test_lenet5_by_hand():
    # conv1: 26*26 positions x 3*3*1*6, conv2: 11*11 x 3*3*6*16, dense: 400*120 + 120*84 + 84*10
    assert costs.flops(models.lenet5()) == 26 * 26 * 54 + 11 * 11 * 864 + 48_000 + 10_080 + 840


def _mobilenet_by_layer(model, nonzero_only=False):
    """MobileNetV2's MACs from each layer's configuration and output shape."""
    total = 0
    for layer in model.layers:
        nnz = (lambda w: int(np.count_nonzero(w.numpy()))) if nonzero_only else (lambda w: int(np.prod(w.shape)))
        if isinstance(layer, L.DepthwiseConv2D):  # per output pixel: k*k per channel x multiplier
            h, w = layer.output.shape[1:3]
            total += h * w * nnz(layer.kernel)
        elif isinstance(layer, L.Conv2D):  # per output pixel: k*k*in per filter
            h, w = layer.output.shape[1:3]
            total += h * w * nnz(layer.kernel)
        elif isinstance(layer, L.Dense):
            total += nnz(layer.kernel)
        else:
            assert not isinstance(layer, (L.SeparableConv2D, L.EinsumDense))
    return total


def test_mobilenet_v2(rng):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
    by_layer = 0
    for layer in model.layers:
        if isinstance(layer, L.DepthwiseConv2D):
            h, w = layer.output.shape[1:3]
            by_layer += h * w * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1] * layer.depth_multiplier
        elif isinstance(layer, L.Conv2D):
            h, w = layer.output.shape[1:3]
            by_layer += h * w * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1] * layer.filters
        elif isinstance(layer, L.Dense):
            by_layer += layer.input.shape[-1] * layer.units
    assert costs.flops(model) == by_layer == _mobilenet_by_layer(model) == profiled_macs(model)
    assert costs.flops(model) > _previous_flops(model)  # the depthwise convolutions it used to miss
    depthwise = [layer.kernel for layer in model.layers if isinstance(layer, L.DepthwiseConv2D)]
    sparsify(rng, *depthwise[::3], model.get_layer("Conv1").kernel)
    assert costs.flops(model, nonzero_only=True) == _mobilenet_by_layer(model, nonzero_only=True)


def test_transformer_encoder_block(rng):
    tokens, width, heads, key_dim, hidden = 32, 64, 4, 16, 256
    inputs = keras.Input((tokens, width))
    attended = L.MultiHeadAttention(num_heads=heads, key_dim=key_dim, name="mha")(inputs, inputs)
    x = L.LayerNormalization()(L.Add()([inputs, attended]))
    ffn = L.Dense(width, name="ffn2")(L.Dense(hidden, activation="relu", name="ffn1")(x))
    model = keras.Model(inputs, L.LayerNormalization()(L.Add()([x, ffn])))
    projections = 3 * tokens * width * heads * key_dim + tokens * heads * key_dim * width
    attention = heads * tokens * tokens * key_dim * 2  # QK^T and attention x V
    ffn_macs = tokens * width * hidden + tokens * hidden * width
    assert costs.flops(model) == projections + attention + ffn_macs == 1_703_936
    # nonzero: each kernel's nonzero entries x the tokens it is applied to; QK^T, AV always count
    mha = model.get_layer("mha")
    kernels = [mha.query_dense.kernel, mha.key_dense.kernel, mha.value_dense.kernel, mha.output_dense.kernel,
               model.get_layer("ffn1").kernel, model.get_layer("ffn2").kernel]
    sparsify(rng, *kernels)
    assert costs.flops(model, nonzero_only=True) == tokens * sum(
        int(np.count_nonzero(k.numpy())) for k in kernels) + attention

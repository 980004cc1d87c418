"""The dependency graph and exact compaction on graphs nobody hand-picked.

Property test: random small graphs (chains and branches, with and without bias, BN with and
without scale/center and with random statistics, every activation kind, Add / Concatenate /
squeeze-excite Multiply, depthwise and separable convolutions, Flatten and GlobalPooling heads)
and random masks (group masks, producer-only masks, random dead input slices) must either
compact to a model with the masked model's outputs or raise the package's own error. The
reference is the masked Keras model itself, run by Keras.
"""

import keras
import numpy as np
import pytest

from helpers import pruning
from helpers.pruning import CompactionError, DependencyGraph, PruningError, compact

L = keras.layers
ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu", "linear", "swish", "gelu", "softplus"]


def _random_bn(rng, name):
    return L.BatchNormalization(center=bool(rng.integers(2)), scale=bool(rng.integers(2)), name=name)


def random_model(seed):
    """A random functional CNN; every BN gets random statistics so pruned channels carry constants."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x, channels, n = inputs, 3, 0

    def name(kind):
        nonlocal n
        n += 1
        return f"{kind}{n}"

    def conv(x, filters, **kw):
        return L.Conv2D(filters, 3, padding=kw.pop("padding", rng.choice(["same", "valid"])),
                        use_bias=bool(rng.integers(2)), activation=kw.pop("activation", rng.choice(ACTIVATIONS)),
                        name=name("conv"), **kw)(x)

    x = conv(x, int(rng.integers(4, 9)), padding="same")
    channels = x.shape[-1]
    for _ in range(int(rng.integers(2, 5))):
        block = rng.choice(["conv", "bn", "residual", "concat", "se", "depthwise", "separable", "pool", "act"])
        if block == "conv":
            x = conv(x, int(rng.integers(3, 9)), padding="same")
        elif block == "bn":
            x = _random_bn(rng, name("bn"))(x)
        elif block == "residual":
            y = conv(x, channels, padding="same", activation="linear")
            if rng.integers(2):
                y = _random_bn(rng, name("bn"))(y)
            x = L.Add(name=name("add"))([x, y])
            x = L.Activation(rng.choice(ACTIVATIONS), name=name("act"))(x)
        elif block == "concat":
            a = conv(x, int(rng.integers(2, 6)), padding="same")
            b = conv(x, int(rng.integers(2, 6)), padding="same")
            x = L.Concatenate(name=name("cat"))([a, b] if rng.integers(2) else [a, x, b])
        elif block == "se":
            s = L.GlobalAveragePooling2D(name=name("gap"))(x)
            s = L.Dense(max(1, channels // 2), activation="relu", name=name("se_reduce"))(s)
            s = L.Dense(channels, activation="sigmoid", name=name("se_expand"))(s)
            s = L.Reshape((1, 1, channels), name=name("reshape"))(s)
            x = L.Multiply(name=name("mul"))([x, s])
        elif block == "depthwise":
            x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=int(rng.integers(1, 3)),
                                  use_bias=bool(rng.integers(2)), activation=rng.choice(ACTIVATIONS),
                                  name=name("dw"))(x)
        elif block == "separable":
            x = L.SeparableConv2D(int(rng.integers(3, 8)), 3, padding="same", use_bias=bool(rng.integers(2)),
                                  activation=rng.choice(ACTIVATIONS), name=name("sep"))(x)
        elif block == "pool" and x.shape[1] >= 4:
            x = L.MaxPooling2D(name=name("pool"))(x) if rng.integers(2) else L.ZeroPadding2D(name=name("pad"))(x)
        else:
            x = L.Activation(rng.choice(ACTIVATIONS), name=name("act"))(x)
        channels = x.shape[-1]
    if rng.integers(2):
        x = L.Flatten(name="flatten")(x)
    else:
        x = (L.GlobalAveragePooling2D if rng.integers(2) else L.GlobalMaxPooling2D)(name="gpool")(x)
    if rng.integers(2):
        x = _random_bn(rng, "head_bn")(x)
    x = L.Dense(int(rng.integers(4, 12)), use_bias=bool(rng.integers(2)), activation=rng.choice(ACTIVATIONS),
                name="hidden")(x)
    outputs = L.Dense(3, use_bias=bool(rng.integers(2)), activation=rng.choice(["linear", "softmax"]), name="out")(x)
    model = keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=c).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(size=c).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, size=c).astype("float32"))
        elif layer.weights and not isinstance(layer, L.BatchNormalization) and rng.integers(2):
            bias = getattr(layer, "bias", None)  # nonzero biases, so dead channels carry constants
            if bias is not None:
                bias.assign(rng.normal(size=bias.shape).astype("float32"))
    return model, rng


def random_masks(model, rng):
    kind = rng.choice(["group", "producers", "global", "columns", "rows"])
    amount = float(rng.uniform(0.1, 0.8))
    if kind == "group":
        return kind, pruning.masks_for(model, amount, granularity="filter", importance=rng.choice(["l1", "l2"]))
    if kind == "producers":
        return kind, pruning.masks_for(model, amount, granularity="filter", members="producers")
    if kind == "global":
        return kind, pruning.masks_for(model, amount, granularity="filter", scope="global")
    masks = {}
    for ref in pruning.masks.weight_table(model).values():
        if ref.attribute not in ("kernel", "pointwise_kernel") or isinstance(ref.layer, L.DepthwiseConv2D):
            continue
        shape = tuple(ref.variable.shape)
        axis = -1 if kind == "columns" else -2  # dead outputs (old-style unit masks) or dead inputs
        alive = rng.random(shape[axis]) > amount
        mask = np.broadcast_to(alive[None, :] if axis == -1 else alive[:, None], shape[-2:])
        masks[ref.key] = np.broadcast_to(mask, shape).copy()
    return kind, masks


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_compact_exactly_or_refuse(seed):
    model, rng = random_model(seed)
    kind, masks = random_masks(model, rng)
    pruning.apply_masks(model, masks)
    x = rng.standard_normal((4, 8, 8, 3)).astype("float32")
    expected = model.predict_on_batch(x)
    try:
        small, report = compact(model, verify=False)  # the test checks, not compact's own verification
    except PruningError as error:  # the package's own error, naming a layer
        assert str(error).split(":")[0], error
        return
    got = small.predict_on_batch(x)
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(got, expected, atol=1e-5 * scale, rtol=0)
    assert small.count_params() <= model.count_params()
    if kind == "group":  # a group mask is removed as a whole: the masked model is the compacted one
        graph = DependencyGraph.of(model)
        kept = {r["layer"]: r["kept"] for r in report}
        for key, mask in masks.items():
            layer = key.rsplit("/", 1)[0]
            if key.endswith("/bias") and layer in kept and layer in {p for g in graph.groups for p in g.producers}:
                assert kept[layer] <= max(1, int(mask.sum())), (layer, kept[layer], int(mask.sum()))


def test_group_masks_are_removed_entirely_and_save_parameters():
    for seed in range(8):
        model, rng = random_model(100 + seed)
        pruning.apply_masks(model, pruning.masks_for(model, 0.5, granularity="filter"))
        small, _ = compact(model)
        if DependencyGraph.of(model).groups:
            assert small.count_params() < model.count_params()


# ---------------------------------------------------------------- real models' edge cases


def _chain(*layers, input_shape=(8, 8, 3)):
    inputs = keras.Input(input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _zero_outputs(layer, channels):
    kernel = layer.kernel.numpy()
    kernel[..., channels] = 0
    layer.kernel.assign(kernel)
    if layer.use_bias:
        bias = layer.bias.numpy()
        bias[channels] = 0
        layer.bias.assign(bias)


def _assert_exact(model, x, atol=1e-5):
    small, report = compact(model)
    expected = model.predict_on_batch(x)
    np.testing.assert_allclose(small.predict_on_batch(x), expected, atol=atol * max(1.0, np.abs(expected).max()))
    return small, report


@pytest.mark.parametrize("case", ["conv_bn_relu_conv", "bn_flatten_dense", "sigmoid_dense"])
def test_removed_constants_reach_a_bias_even_where_the_layer_has_none(case, rng):
    """Was silently wrong (0.31 / 1.28 / 0.83): the constant was folded into a bias then dropped."""
    keras.utils.set_random_seed(0)
    if case == "conv_bn_relu_conv":
        model = _chain(L.Conv2D(6, 3, use_bias=False, name="c1"), L.BatchNormalization(name="bn"), L.ReLU(),
                       L.Conv2D(4, 3, use_bias=False, name="c2"), L.Flatten(), L.Dense(3, name="out"))
        producer = "c1"
    elif case == "bn_flatten_dense":
        model = _chain(L.Conv2D(6, 3, name="c1"), L.BatchNormalization(name="bn"), L.Flatten(),
                       L.Dense(5, use_bias=False, name="d"), L.Dense(3, name="out"))
        producer = "c1"
    else:
        model = _chain(L.Dense(8, activation="sigmoid", name="h"), L.Dense(4, use_bias=False, name="d"),
                       input_shape=(6,))
        producer = "h"
    if "bn" in [layer.name for layer in model.layers]:
        bn = model.get_layer("bn")
        bn.moving_mean.assign(rng.normal(size=6).astype("float32"))
        bn.beta.assign(rng.normal(size=6).astype("float32"))
    _zero_outputs(model.get_layer(producer), [0, 2, 3])  # producer-only: the readers' slices stay
    x = rng.standard_normal((3, *model.input_shape[1:])).astype("float32")
    small, report = _assert_exact(model, x)
    assert {r["layer"]: r["kept"] for r in report}[producer] < model.get_layer(producer).kernel.shape[-1]


def test_channels_first_and_softmax_are_kept_not_miscompacted(rng):
    """Were off by 0.24 and 0.39: channels_first treated as channels-last, softmax as elementwise."""
    keras.utils.set_random_seed(0)
    first = _chain(L.Conv2D(6, 3, data_format="channels_first", name="c1"), L.Flatten(), L.Dense(3, name="out"),
                   input_shape=(3, 8, 8))
    _zero_outputs(first.get_layer("c1"), [1, 2])
    first.get_layer("c1").bias.assign(np.ones(6, "float32"))
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    _, report = _assert_exact(first, x)
    assert report[0]["layer"] == "c1" and report[0]["kept"] == report[0]["of"] == 6
    assert "channels_first" in report[0]["reason"]
    for softmax in (L.Dense(6, activation="softmax", name="h"), L.Dense(6, name="h")):
        layers = [softmax] + ([] if softmax.activation.__name__ == "softmax" else [L.Activation("softmax")])
        model = _chain(*layers, L.Dense(3, name="out"), input_shape=(5,))
        _zero_outputs(model.get_layer("h"), [0, 1])
        x = rng.standard_normal((2, 5)).astype("float32")
        _, report = _assert_exact(model, x)
        assert report[0]["kept"] == 6
        assert any("softmax" in reason for reason in DependencyGraph.of(model).blocked)


def test_subclassed_models_get_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.classifier = L.Dense(3)  # defined first, called last
            self.hidden = L.Dense(8)

        def call(self, x):
            return self.classifier(self.hidden(x))

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(PruningError, match="subclassed.*functional"):
        pruning.output_layer(net)
    with pytest.raises(PruningError, match="subclassed"):
        pruning.GradualMagnitudePruning(net, 0.5, end_step=10)
    masks = pruning.masks_for(net, 0.5)  # per-weight pruning needs no graph
    assert len(masks) == 2


def test_output_layer_comes_from_the_graph():
    inputs = keras.Input((4,))
    head = L.Dense(3, name="a_classifier")
    hidden = L.Dense(8, name="z_hidden")
    model = keras.Model(inputs, head(hidden(inputs)))
    # definition order and graph order differ in the layer list of a model built this way
    assert pruning.output_layer(model) == "a_classifier"


def test_nested_models_with_the_same_layer_names(tmp_path):
    """Two nested models each with a Dense named fc: one key each, before and after reloading."""
    def block(name):
        inputs = keras.Input((6,))
        return keras.Model(inputs, L.Dense(6, name="fc")(inputs), name=name)

    inputs = keras.Input((6,))
    model = keras.Model(inputs, L.Dense(2, name="out")(block("b2")(block("b1")(inputs))))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    for m in (model, reloaded):
        masks = pruning.masks_for(m, 0.5)
        assert {"b1/fc/kernel", "b2/fc/kernel", "out/kernel"} <= set(masks)
        pruning.apply_masks(m, masks)
        report = pruning.sparsity(m)
        assert report["b1/fc"] == pytest.approx(0.5) and report["b2/fc"] == pytest.approx(0.5)
        assert report["total"] == pytest.approx(0.5, abs=0.01)


def test_strip_reaches_nested_models_and_saves_plain(tmp_path):
    inputs = keras.Input((6,))
    inner = keras.Model(inputs, L.Dense(6, name="fc")(inputs), name="inner")
    outer_in = keras.Input((6,))
    model = keras.Model(outer_in, L.Dense(2, name="out")(inner(outer_in)))
    pruning.attach_masks(model, pruning.masks_for(model, 0.5))
    plain = pruning.strip(model)
    for ref in pruning.masks.weight_table(plain).values():
        assert ref.variable.constraint is None
        assert getattr(ref.layer, ref.constraint_attribute or "x", None) is None
    plain.save(tmp_path / "plain.keras")
    config = (tmp_path / "plain.keras").read_bytes()
    assert b"PruningConstraint" not in config and b"helpers" not in config


def test_depthwise_and_bn_masks_survive_a_save(tmp_path, rng):
    model = _chain(L.Conv2D(4, 1, name="c"), L.DepthwiseConv2D(3, name="dw"), L.BatchNormalization(name="bn"),
                   L.GlobalAveragePooling2D(), L.Dense(2, name="out"))
    masks = pruning.masks_for(model, 0.5, granularity="filter")
    assert {"dw/kernel", "bn/gamma", "bn/beta"} <= set(masks)
    masks.update(pruning.masks_for(model, 0.3, layers=["dw"]))  # unstructured on the depthwise kernel
    pruning.attach_masks(model, masks)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    current = pruning.current_masks(reloaded)
    for key in ("dw/kernel", "bn/gamma", "bn/beta", "c/kernel"):
        np.testing.assert_array_equal(current[key], pruning.current_masks(model)[key])


def test_sequential_built_with_add_and_reloaded_compacts(tmp_path, rng):
    model = keras.Sequential()
    model.add(keras.Input((8, 8, 3)))
    model.add(L.Conv2D(6, 3, activation="relu", name="c1"))
    model.add(L.Conv2D(4, 3, activation="relu", name="c2"))
    model.add(L.Flatten())
    model.add(L.Dense(3, name="out"))
    masks = pruning.masks_for(model, 0.5, granularity="filter")
    pruning.attach_masks(model, masks)
    model.save(tmp_path / "s.keras")
    x = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    for m in (model, keras.saving.load_model(tmp_path / "s.keras")):
        assert set(pruning.current_masks(m)) == set(masks)
        _, report = _assert_exact(m, x)
        assert [r["kept"] for r in report] == [3, 2, 3]


def test_every_kernel_layer_is_pruned_or_named():
    inputs = keras.Input((10,), dtype="int32")
    x = L.Embedding(50, 8, name="emb")(inputs)
    x = L.Conv1D(8, 3, padding="same", name="c1d")(x)
    x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = L.LSTM(6, return_sequences=True, name="lstm")(x)
    x = L.EinsumDense("abc,cd->abd", output_shape=(10, 5), name="einsum")(x)
    x = L.PReLU(name="prelu")(x)
    outputs = L.Dense(2, name="out")(L.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    masks = pruning.masks_for(model, 0.5)
    for key in ("emb/embeddings", "c1d/kernel", "mha/query/kernel", "mha/attention_output/kernel",
                "lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel", "einsum/kernel", "out/kernel"):
        assert key in masks, key
    pruning.apply_masks(model, masks)
    report = pruning.sparsity(model)
    assert report["total"] == pytest.approx(0.5, abs=0.01)
    assert report["skipped"] == ["prelu"]
    assert "mha/query" in report and "emb" in report


def test_bad_masks_are_refused():
    model = _chain(L.Dense(4, name="d"), input_shape=(3,))
    for bad in (np.full((3, 4), 0.5), np.full((3, 4), np.nan)):
        with pytest.raises(PruningError, match="d/kernel"):
            pruning.apply_masks(model, {"d/kernel": bad})
    with pytest.raises(PruningError, match="shape"):
        pruning.apply_masks(model, {"d/kernel": np.ones((4, 3), bool)})


def test_global_filter_pruning_never_empties_a_layer_and_round_to():
    model, _ = random_model(7)
    masks = pruning.masks_for(model, 0.95, granularity="filter", scope="global")
    graph = DependencyGraph.of(model)
    for group in graph.groups:
        producer = group.producers[0]
        kept = masks[f"{producer}/bias"].sum() if f"{producer}/bias" in masks else None
        if kept is not None:
            assert kept >= 1
    wide = _chain(L.Conv2D(32, 3, name="c1"), L.Conv2D(24, 3, name="c2"), L.Flatten(), L.Dense(3, name="out"))
    rounded = pruning.masks_for(wide, 0.3, granularity="filter", round_to=8)
    assert rounded["c1/bias"].sum() % 8 == 0 and rounded["c2/bias"].sum() % 8 == 0
    capped = pruning.masks_for(wide, 0.99, granularity="filter", scope="global", max_ratio=0.5)
    assert rounded["c1/bias"].sum() >= 16 and capped["c2/bias"].sum() >= 12


def test_importances_taylor_bn_scale_and_a_callable(rng):
    model = _chain(L.Conv2D(6, 3, name="c1"), L.BatchNormalization(name="bn"), L.ReLU(), L.Flatten(),
                   L.Dense(3, name="out"))
    gamma = np.array([5, 0.1, 4, 0.2, 3, 0.3], "float32")
    model.get_layer("bn").gamma.assign(gamma)
    slim = pruning.masks_for(model, 0.5, granularity="filter", importance="bn_scale")
    np.testing.assert_array_equal(slim["bn/gamma"], gamma > 1)
    x, y = rng.standard_normal((8, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 8)
    taylor = pruning.masks_for(model, 0.5, granularity="filter", importance="taylor", data=(x, y))
    assert (~taylor["c1/bias"]).sum() == 3
    with pytest.raises(PruningError, match="batch"):
        pruning.masks_for(model, 0.5, importance="taylor")
    favourite = pruning.masks_for(model, 0.5, granularity="filter",
                                  importance=lambda layer, granularity: np.arange(layer.kernel.shape[-1])[::-1])
    np.testing.assert_array_equal(favourite["c1/bias"], [True, True, True, False, False, False])


def test_n_m_sparsity():
    model = _chain(L.Dense(8, name="d"), L.Dense(4, name="out"), input_shape=(16,))
    masks = pruning.masks_for(model, 0.0, granularity="2:4")
    kernel = np.abs(model.get_layer("d").kernel.numpy())
    blocks = masks["d/kernel"].T.reshape(-1, 4)
    assert (blocks.sum(axis=1) == 2).all()
    kept_values = kernel.T.reshape(-1, 4)
    assert (np.where(blocks, kept_values, np.inf).min(axis=1) >= np.where(blocks, -np.inf, kept_values).max(axis=1)).all()
    with pytest.raises(PruningError, match="multiple of 4"):
        pruning.masks_for(_chain(L.Dense(3, name="d"), input_shape=(6,)), 0.0, granularity="2:4")


def test_masked_model_saves_small(tmp_path):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35)
    pruning.attach_masks(model, pruning.masks_for(model, 0.5))
    model.save(tmp_path / "masked.keras")
    pruning.strip(model).save(tmp_path / "plain.keras")
    assert (tmp_path / "masked.keras").stat().st_size < 1.5 * (tmp_path / "plain.keras").stat().st_size


def random_sequence_model(seed):
    """A random sequence model: Conv1D, Dense on 3-D inputs (per token), MultiHeadAttention called
    with separate query / value / key tensors and keywords, LayerNormalization, residual Adds."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    d = int(rng.integers(4, 9))
    inputs = keras.Input((6, d))
    x = inputs
    for index in range(int(rng.integers(1, 4))):
        block = rng.choice(["attention", "ffn", "conv1d", "norm"])
        if block == "attention":
            context = L.Dense(d, name=f"context{index}")(x) if rng.integers(2) else x
            heads, key_dim = int(rng.integers(1, 4)), int(rng.integers(2, 5))
            if rng.integers(2):
                a = L.MultiHeadAttention(heads, key_dim, name=f"mha{index}")(x, context)
            else:
                a = L.MultiHeadAttention(heads, key_dim, name=f"mha{index}")(query=x, value=context, key=x)
            x = L.Add(name=f"add{index}")([x, a])
        elif block == "ffn":
            f = L.Dense(int(rng.integers(4, 17)), activation=rng.choice(ACTIVATIONS), use_bias=bool(rng.integers(2)),
                        name=f"ffn_in{index}")(x)
            f = L.Dense(d, use_bias=bool(rng.integers(2)), name=f"ffn_out{index}")(f)
            x = L.Add(name=f"add{index}")([x, f]) if rng.integers(2) else f
        elif block == "conv1d":
            x = L.Conv1D(d, 3, padding="same", activation=rng.choice(ACTIVATIONS), use_bias=bool(rng.integers(2)),
                         name=f"conv{index}")(x)
        else:
            x = L.LayerNormalization(name=f"ln{index}")(x)
    x = L.GlobalAveragePooling1D(name="gpool")(x) if rng.integers(2) else L.Flatten(name="flatten")(x)
    outputs = L.Dense(3, name="out")(L.Dense(int(rng.integers(4, 9)), activation="relu", name="hidden")(x))
    model = keras.Model(inputs, outputs)
    for weight in model.weights:
        if weight.path.endswith("bias"):
            weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return model, rng


@pytest.mark.parametrize("seed", range(20))
def test_random_sequence_graphs_compact_exactly_or_refuse(seed):
    model, rng = random_sequence_model(seed)
    kind, masks = random_masks(model, rng)
    pruning.apply_masks(model, masks)
    x = rng.standard_normal((4, *model.input_shape[1:])).astype("float32")
    expected = model.predict_on_batch(x)
    try:
        small, _ = compact(model, verify=False)
    except PruningError as error:
        assert str(error).split(":")[0], error
        return
    got = small.predict_on_batch(x)
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(float(np.abs(expected).max()), 1e-6), rtol=0)
    assert small.count_params() <= model.count_params()


def test_layers_called_with_several_tensors_and_keywords_are_rebuilt_as_called(rng):
    """MultiHeadAttention(query, value) and (query=, value=, key=) used to be called again with its
    first input only (a TypeError from Keras): compaction calls every layer as the model did."""
    inputs = keras.Input((5, 8))
    context = keras.Input((7, 8))
    a = L.MultiHeadAttention(2, 4, name="self")(inputs, inputs)
    b = L.MultiHeadAttention(2, 4, name="cross")(query=a, value=context, key=context)
    f = L.Dense(16, activation="relu", name="ffn_in")(b)
    out = L.Dense(3, name="out")(L.GlobalAveragePooling1D()(L.Dense(8, name="ffn_out")(f)))
    model = keras.Model([inputs, context], out)
    pruning.apply_masks(model, pruning.masks_for(model, 0.5, granularity="unit"))
    x = [rng.standard_normal((2, 5, 8)).astype("float32"), rng.standard_normal((2, 7, 8)).astype("float32")]
    small, report = compact(model)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    rows = {r["layer"]: r for r in report}
    assert rows["ffn_in"]["kept"] == 8 and "reason" in rows["self"] and "reason" in rows["cross"]


@pytest.mark.parametrize("seed", range(6))
def test_attention_heads_are_pruned_and_removed_exactly(seed):
    """Head masks zero a head's query/key/value columns and output rows; compaction rebuilds the
    layer with fewer heads and the same outputs, per layer and globally, with and without bias."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    use_bias = bool(seed % 2)
    inputs = keras.Input((5, 12))
    # Keras' JAX attention (jax.nn.dot_product_attention) needs value_dim == key_dim: such a model
    # does not run on JAX at all, pruned or not
    value_dim = 3 if keras.backend.backend() == "jax" else int(rng.integers(2, 5))
    a = L.MultiHeadAttention(4, 3, value_dim=value_dim, use_bias=use_bias, name="first")(inputs, inputs)
    b = L.MultiHeadAttention(6, 2, use_bias=use_bias, name="second")(a, inputs)
    out = L.Dense(3, name="out")(L.Flatten()(L.Add()([a, b])))
    model = keras.Model(inputs, out)
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    scope = ["layer", "global"][seed % 3 == 0]
    masks = pruning.masks_for(model, 0.5, granularity="head", importance=["l1", "l2"][seed % 2], scope=scope)
    pruning.apply_masks(model, masks)
    x = rng.standard_normal((3, 5, 12)).astype("float32")
    small, report = compact(model)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x),
                               atol=1e-5 * float(np.abs(model.predict_on_batch(x)).max()))
    heads = {r["layer"]: (r["kept"], r["of"]) for r in report if r.get("unit") == "heads"}
    assert sum(of - kept for kept, of in heads.values()) == 5  # int(10 heads * 0.5)
    assert small.get_layer("first").num_heads + small.get_layer("second").num_heads == 5
    assert pruning.costs.flops(small) < pruning.costs.flops(model)


def test_head_importance_is_the_heads_weight_norm():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6))
    model = keras.Model(inputs, L.MultiHeadAttention(3, 2, name="mha")(inputs, inputs))
    layer = model.get_layer("mha")
    for dense in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense):
        dense.kernel.assign(np.ones(dense.kernel.shape, "float32"))
    layer.value_dense.kernel.assign(np.concatenate([np.full((6, 1, 2), c, "float32") for c in (3, 0.1, 2)], axis=1))
    masks = pruning.masks_for(model, 0.34, granularity="head", importance="l1")
    assert not masks["mha/value/kernel"][:, 1].any() and masks["mha/value/kernel"][:, [0, 2]].all()
    assert not masks["mha/attention_output/kernel"][1].any() and masks["mha/attention_output/bias"].all()
    with pytest.raises(ValueError, match="does not rank attention heads"):
        pruning.masks_for(model, 0.3, granularity="head", importance="bn_scale")

"""Classic magnitude pruning, masks kept during retraining, gradual pruning, and compaction."""

import keras
import numpy as np
import pytest

from helpers import costs, magnitude, models
from helpers.compaction import compact


def small_mlp(seed=0):
    return models.mlp(seed=seed, hidden=(64, 48, 32, 16))


def test_weight_masks_prune_exactly_int_size_k_per_layer():
    model = small_mlp()
    masks = magnitude.weight_masks(model, 0.7)
    assert set(masks) == {f"hidden{i}/kernel" for i in range(1, 5)}  # output layer excluded
    for layer in magnitude.prunable_layers(model):
        mask, kernel = masks[layer.kernel.path], layer.kernel.numpy()
        assert (~mask).sum() == int(kernel.size * 0.7)
        assert np.abs(kernel[~mask]).max() <= np.abs(kernel[mask]).min()  # the smallest ones went
    with_bias = magnitude.weight_masks(model, 0.5, prune_bias=True)  # seed 002's quirk
    assert (~with_bias["hidden1/bias"]).sum() == 32


def test_global_masks_use_one_threshold():
    model = small_mlp()
    masks = magnitude.global_masks(model, 0.6)
    kept = np.concatenate([np.abs(l.kernel.numpy())[masks[l.kernel.path]] for l in magnitude.prunable_layers(model)])
    dropped = np.concatenate([np.abs(l.kernel.numpy())[~masks[l.kernel.path]] for l in magnitude.prunable_layers(model)])
    assert dropped.max() <= kept.min()
    assert dropped.size == int((dropped.size + kept.size) * 0.6)
    per_layer = [1 - masks[l.kernel.path].mean() for l in magnitude.prunable_layers(model)]
    assert max(per_layer) - min(per_layer) > 0.01  # layers end up with different sparsities


def test_unit_masks_drop_whole_columns_by_l2_norm():
    model = small_mlp()
    masks = magnitude.unit_masks(model, 0.25)
    kernel = model.get_layer("hidden2").kernel.numpy()
    keep_units = masks["hidden2/bias"]
    assert (~keep_units).sum() == 12
    assert np.all(masks["hidden2/kernel"] == keep_units[None, :])
    norms = np.linalg.norm(kernel, axis=0)
    assert norms[~keep_units].max() <= norms[keep_units].min()
    cnn = models.cifar_cnn(width=0.05)
    filters = magnitude.unit_masks(cnn, 0.5, layers=["conv2"])
    assert filters["conv2/kernel"].shape == tuple(cnn.get_layer("conv2").kernel.shape)
    assert (~filters["conv2/bias"]).sum() == int(cnn.get_layer("conv2").filters * 0.5)


def test_masks_stay_applied_during_retraining(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    masks = magnitude.weight_masks(model, 0.8)
    magnitude.attach_masks(model, masks)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for path, mask in masks.items():
        value = next(v for v in model.weights if v.path == path).numpy()
        assert np.all(value[~mask] == 0)
        assert np.count_nonzero(value[mask]) == mask.sum()  # kept weights are still trained and nonzero


def test_masks_attached_after_training_still_hold(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # the train step is traced without constraints
    masks = magnitude.weight_masks(model, 0.8)
    magnitude.attach_masks(model, masks)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    kernel = model.get_layer("hidden1").kernel.numpy()
    assert np.all(kernel[~masks["hidden1/kernel"]] == 0)


def test_gradual_magnitude_pruning_reaches_target_on_schedule(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    gmp = magnitude.GradualMagnitudePruning(model, final_sparsity=0.9, begin_step=0, end_step=12, frequency=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[gmp])  # 16 steps
    steps = [s for s, _ in gmp.sparsity_log]
    assert steps == [0, 4, 8, 12]
    targets = [t for _, t in gmp.sparsity_log]
    assert targets[0] == 0.0 and targets[-1] == pytest.approx(0.9) and targets == sorted(targets)
    assert targets[1] == pytest.approx(0.9 * (1 - (1 - 4 / 12) ** 3))
    report = magnitude.sparsity(model, include_output=False)
    for name in ("hidden1", "hidden2", "hidden3", "hidden4"):
        assert report[name] == pytest.approx(0.9, abs=0.02)


def test_polynomial_sparsity_formula():
    assert magnitude.polynomial_sparsity(0, 0.0, 0.8, 0, 100) == 0.0
    assert magnitude.polynomial_sparsity(50, 0.0, 0.8, 0, 100) == pytest.approx(0.8 * (1 - 0.5**3))
    assert magnitude.polynomial_sparsity(500, 0.0, 0.8, 0, 100) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        magnitude.polynomial_sparsity(0, 0, 0.5, 10, 10)


def test_iterative_pruning_compounds(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")

    def retrain(m, target):
        m.fit(x, y, batch_size=32, epochs=1, verbose=0)

    record = magnitude.iterative_pruning(model, lambda m, t: magnitude.weight_masks(m, t), [0.5, 0.75, 0.9], retrain)
    assert [t for t, _ in record] == [0.5, 0.75, 0.9]
    assert magnitude.sparsity(model, include_output=False)["total"] == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="non-decreasing"):
        magnitude.iterative_pruning(model, magnitude.weight_masks, [0.5, 0.2], retrain)


def test_effective_sparsity_counts_dead_units():
    model = small_mlp()
    magnitude.apply_masks(model, magnitude.unit_masks(model, 0.5))
    nominal = magnitude.sparsity(model)["total"]
    # half the units of each hidden layer are dead, so half the rows of the next layer are dead too
    sizes = [784 * 64, 64 * 48, 48 * 32, 32 * 16, 16 * 10]
    alive = [784 * 32, 32 * 24, 24 * 16, 16 * 8, 8 * 10]
    assert magnitude.effective_sparsity(model) == pytest.approx(1 - sum(alive) / sum(sizes))
    assert magnitude.effective_sparsity(model) > nominal


def test_bad_pruning_arguments():
    model = small_mlp()
    with pytest.raises(ValueError, match="fraction"):
        magnitude.weight_masks(model, 1.5)
    with pytest.raises(ValueError, match="no prunable"):
        magnitude.weight_masks(model, 0.5, layers=["conv9"])
    with pytest.raises(ValueError, match="shape"):
        magnitude.apply_masks(model, {"hidden1/kernel": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="does not have"):
        magnitude.apply_masks(model, {"nope/kernel": np.ones((2, 2), bool)})


@pytest.mark.parametrize("build, shape", [
    (lambda: small_mlp(), (28, 28, 1)),
    (lambda: models.cifar_cnn(width=0.06), (32, 32, 3)),
    (lambda: models.lenet5(), (28, 28, 1)),
], ids=["mlp", "cifar_cnn", "lenet5"])
def test_compaction_preserves_outputs_and_saves(build, shape, tmp_path, rng):
    model = build()
    magnitude.apply_masks(model, magnitude.unit_masks(model, 0.5))
    x = rng.random((16, *shape), dtype=np.float32)
    small, report = compact(model)
    assert small.count_params() < model.count_params()
    assert any(r["kept"] < r["of"] for r in report)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    path = tmp_path / "small.keras"
    small.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    assert costs.flops(small) < costs.flops(model)


def test_compaction_folds_batchnorm_constants_and_refuses_inexact_cases(rng):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="elu", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)  # valid padding: exact folding
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, name="out")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rng.normal(size=6).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=6).astype("float32"))
    bn.beta.assign(rng.normal(size=6).astype("float32"))
    magnitude.apply_masks(model, magnitude.unit_masks(model, 0.5, layers=["c1", "c2"]))
    small, report = compact(model)
    assert [r["kept"] for r in report] == [3, 2, 5]
    x = rng.random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    # VGG: with BN at its initial statistics a dead filter stays exactly 0, so it compacts...
    vgg = models.vgg()
    magnitude.apply_masks(vgg, magnitude.unit_masks(vgg, 0.5))
    images = rng.random((4, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(compact(vgg)[0].predict_on_batch(images), vgg.predict_on_batch(images), atol=1e-5)
    # ... but a nonzero BN shift makes it a constant feeding a 'same'-padded conv: not exact, refused
    vgg.get_layer("bn1_1").beta.assign(np.full(32, 0.1, "float32"))
    with pytest.raises(NotImplementedError, match="padding"):
        compact(vgg)


def test_costs():
    model = models.lenet5()
    assert costs.parameters(model, nonzero_only=False) == 60_074
    # conv1: 26*26*54, conv2: 11*11*864, dense: 48000 + 10080 + 840
    assert costs.flops(model) == 26 * 26 * 54 + 11 * 11 * 864 + 48_000 + 10_080 + 840
    magnitude.apply_masks(model, magnitude.weight_masks(model, 0.5, layers=["denselayer1"]))
    assert costs.flops(model, nonzero_only=True) < costs.flops(model)
    assert costs.latency(model, batch_size=4, repeats=3, warmup=1) > 0


def test_compaction_names_the_layer_it_cannot_handle():
    import keras

    from helpers.compaction import compact

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = keras.layers.Add(name="residual_add")([x, y])
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    with pytest.raises(NotImplementedError, match="residual_add"):
        compact(keras.Model(inputs, outputs))
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="d1")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    with pytest.raises(NotImplementedError, match="LayerNormalization.*norm"):
        compact(keras.Model(inputs, keras.layers.Dense(2)(x)))

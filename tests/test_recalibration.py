"""``pruning.recalibrate_batch_norm`` against a brute-force reference: each BN's statistics are
the exact mean and biased variance of its inputs over all images, where the inputs are those of
training-mode forward passes batch by batch."""

import keras
import numpy as np
import pytest

from helpers import pruning


def residual_bn_cnn(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="bn_stem")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="block")(x)
    y = keras.layers.BatchNormalization(name="bn_block")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(5, 1, name="head_conv")(x)
    x = keras.layers.BatchNormalization(name="bn_frozen")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="classifier")(x))


def reference_statistics(model, x, batch_size, names):
    """Each named BN's inputs, from training-mode passes of a copy batch by batch, pooled."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name in names:
        copy.get_layer(name).trainable = model.get_layer(name).trainable
    taps = keras.Model(copy.input, [copy.get_layer(name).input for name in names])
    pooled = [[] for _ in names]
    for start in range(0, len(x), batch_size):
        outputs = taps(x[start:start + batch_size], training=True)
        for store, value in zip(pooled, outputs):
            store.append(np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64).reshape(-1, value.shape[-1]))
    return {name: (np.concatenate(v).mean(0), np.concatenate(v).var(0)) for name, v in zip(names, pooled)}


@pytest.mark.parametrize("seed,n,batch_size", [(0, 40, 16), (1, 33, 33), (2, 50, 7), (3, 5, 64)])
def test_statistics_are_the_pooled_mean_and_variance_of_each_bn_input(seed, n, batch_size):
    model = residual_bn_cnn(seed)
    model.get_layer("bn_frozen").trainable = False
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 8, 8, 3)) * rng.uniform(0.5, 3.0) + rng.normal()).astype("float32")
    frozen = [w.copy() for w in model.get_layer("bn_frozen").get_weights()]
    others = {w.path: np.asarray(w.numpy()).copy() for w in model.weights if "moving" not in w.path}
    names = ["bn_stem", "bn_block"]
    expected = reference_statistics(model, x, batch_size, names)

    assert pruning.recalibrate_batch_norm(model, x, batch_size=batch_size) == 2

    for name in names:
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), expected[name][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), expected[name][1], rtol=1e-4, atol=1e-5)
        assert layer.momentum == 0.99  # restored
    for before, after in zip(frozen, model.get_layer("bn_frozen").get_weights()):
        np.testing.assert_array_equal(before, after)  # trainable=False: inference mode, untouched
    for w in model.weights:
        if "moving" not in w.path:
            np.testing.assert_array_equal(np.asarray(w.numpy()), others[w.path])


def test_a_model_without_batch_norm_is_untouched():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    weights = model.get_weights()
    assert pruning.recalibrate_batch_norm(model, np.ones((8, 4), "float32")) == 0
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_the_budget_environment_recalibrates_after_each_episodes_pruning():
    """With ``recalibration_data`` the reward is measured with BN statistics re-estimated on the
    pruned network (after the recovery steps): the same as pruning, recovering and recalibrating
    by hand; without it the dense network's statistics stay."""
    from helpers.pruning import budget, costs

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 3), dtype="float32"), rng.integers(0, 3, 64)
    xr = rng.random((48, 8, 8, 3), dtype="float32")
    results = {}
    for recalibrate in (False, True):
        model = residual_bn_cnn(0)
        env = budget.GroupPruningEnv(model, x[:32], y[:32], costs.ParameterFraction(model), finetune_data=(x, y),
                                     finetune_steps=2, finetune_batch=16,
                                     recalibration_data=xr if recalibrate else None)
        masks = env.layer_masks(np.full(env.n_steps, 0.5))
        reward, _ = env.evaluate(masks)
        results[recalibrate] = (reward, model.get_layer("bn_block").moving_mean.numpy().copy())
        if recalibrate:  # by hand: the same recovery, then the statistics of xr
            again = residual_bn_cnn(0)
            hand = budget.GroupPruningEnv(again, x[:32], y[:32], costs.ParameterFraction(again),
                                          finetune_data=(x, y), finetune_steps=2, finetune_batch=16)
            hand.evaluate(masks)
            pruning.recalibrate_batch_norm(again, xr, batch_size=len(xr))
            np.testing.assert_allclose(results[True][1], again.get_layer("bn_block").moving_mean.numpy(), rtol=1e-5,
                                       atol=1e-6)
            assert reward == hand.accuracy()
    assert not np.allclose(results[False][1], results[True][1])

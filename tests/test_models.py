"""Parameter counts of every network (REPRODUCTION_NOTES.md §11) and seeding."""

import keras
import numpy as np
import pytest

from helpers import models


def test_lenet5_counts():
    model = models.lenet5("multi")
    assert model.count_params() == 60_074
    kernels = [int(np.prod(layer.kernel.shape)) for layer in models.dense_layers(model)]
    assert kernels == [48_000, 10_080, 840]
    assert [layer.name for layer in models.dense_layers(model)] == ["denselayer1", "denselayer2", "denselayer3"]


def test_vgg_counts():
    model = models.vgg("multi")
    assert model.count_params() == 309_290
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable == 308_394
    (dense,) = models.dense_layers(model)
    assert int(np.prod(dense.kernel.shape)) == 20_480


def test_mlp_and_cifar_cnn_counts():
    assert models.mlp().count_params() == 2_388_710
    assert models.cifar_cnn(width=1.0).count_params() == 10_026_374
    small = models.cifar_cnn(width=0.25)
    assert small.count_params() < 1_000_000 and small.output_shape == (None, 10)


def test_parameter_table_sums_to_model_total():
    for model in (models.lenet5(), models.vgg(), models.mlp()):
        assert sum(row["params"] for row in models.parameter_table(model)) == model.count_params()


def test_variants_regularizers():
    multi, base = models.lenet5("multi"), models.lenet5("baseline")
    assert all(layer.kernel_regularizer is None for layer in models.dense_layers(multi))
    assert all(float(layer.kernel_regularizer.l1) == pytest.approx(3e-4) for layer in models.dense_layers(base))
    assert all(float(layer.kernel_regularizer.l2) == pytest.approx(1e-4) for layer in models.conv_layers(multi))
    assert float(models.dense_layers(models.vgg("baseline"))[0].kernel_regularizer.l1) == pytest.approx(0.03)


def test_same_seed_same_initial_weights():
    a, b, c = models.lenet5("multi", seed=3), models.lenet5("baseline", seed=3), models.lenet5("multi", seed=4)
    for va, vb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="variant"):
        models.lenet5("sparse")
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("resnet")
    with pytest.raises(ValueError, match="width"):
        models.cifar_cnn(width=0)
    with pytest.raises(ValueError, match="lambda_dense"):
        models.lenet5("baseline", lambda_dense=-1.0)


def test_sign_l1_matches_keras_l1_and_has_zero_subgradient_at_zero():
    import tensorflow as tf

    from helpers.models import SignL1

    w = tf.Variable([[0.0, -0.5], [2.0, 0.0]])
    reg = SignL1(0.1)
    assert float(reg(w)) == pytest.approx(float(keras.regularizers.L1(0.1)(w)))
    with tf.GradientTape() as tape:
        value = reg(w)
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 0.1 * np.sign(w.numpy()))
    assert SignL1.from_config(reg.get_config()).l1 == 0.1

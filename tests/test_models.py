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
        models.build_model("resnet")  # resnet20 is a model, "resnet" is not
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


def test_resnet20_counts_shape_and_residual_groups():
    from helpers import pruning

    model = models.resnet20()
    assert model.count_params() == 274_042 and model.output_shape == (None, 10)
    assert models.build_model("resnet20").count_params() == 274_042
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 21 and sum(layer.name.endswith("_proj") for layer in convs) == 2  # 19 + 2 projections
    graph = pruning.DependencyGraph.of(model)
    assert len(graph.groups) == 12  # 9 blocks' inner convs + one residual stream per stage
    streams = sorted((g.size, sorted(g.producers)) for g in graph.groups if len(g.producers) > 1)
    assert streams == [(16, ["s1b1_conv2", "s1b2_conv2", "s1b3_conv2", "stem_conv"]),
                       (32, ["s2b1_conv2", "s2b1_proj", "s2b2_conv2", "s2b3_conv2"]),
                       (64, ["s3b1_conv2", "s3b1_proj", "s3b2_conv2", "s3b3_conv2"])]
    assert graph.output_layers() == ["dense"]
    small = models.resnet20(width=0.5, blocks=2, input_shape=(16, 16, 3))
    assert small.name == "resnet14_w0.5" and small.output_shape == (None, 10)
    with pytest.raises(ValueError, match="blocks"):
        models.resnet20(blocks=0)
    with pytest.raises(ValueError, match="width"):
        models.resnet20(width=0)


def test_resnet20_global_filter_pruning_compacts_to_the_same_outputs():
    from helpers import pruning

    model = models.resnet20(seed=1)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.5, 2.0, n)])
    masks = pruning.masks_for(model, 0.5, granularity="filter", scope="global")
    pruning.apply_masks(model, masks)
    small, report = pruning.compact(model)  # verifies the outputs itself
    x = rng.standard_normal((8, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    kept = {row["layer"]: row["kept"] for row in report}
    groups = pruning.DependencyGraph.of(model).groups
    for group in groups:  # a residual stream shrinks as one, in every producer
        assert len({kept[p] for p in group.producers}) == 1
    removed = sum(g.size - kept[g.producers[0]] for g in groups)
    assert removed == int(0.5 * sum(g.size for g in groups))  # half of the channels, counted per group
    assert small.count_params() < 0.6 * model.count_params()

"""SMGD / MAdam / MRMSprop against brute force, autodiff and independent references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import models
from helpers.objectives import SparsityObjective
from helpers.optimizers import MAdam, MRMSprop, RMSpropKeras2, SMGD, min_norm_coefficients


def _brute_force_alpha(g1, g2, n=200_001):
    alphas = np.linspace(0.0, 1.0, n)
    # ||a g1 + (1-a) g2||^2 as a quadratic in a, evaluated on a fine grid.
    a11, a22, a12 = g1 @ g1, g2 @ g2, g1 @ g2
    norms = alphas**2 * a11 + (1 - alphas) ** 2 * a22 + 2 * alphas * (1 - alphas) * a12
    return alphas[np.argmin(norms)]


@pytest.mark.parametrize("trial", range(20))
def test_min_norm_matches_brute_force(trial):
    rng = np.random.default_rng(trial)
    n = 50
    g1 = rng.normal(size=n)
    # Mix scales like the real problem: g2 sometimes much larger than g1.
    g2 = rng.normal(size=n) * 10.0 ** rng.uniform(-2, 2) + rng.uniform(-1, 1) * g1
    split = [g1[:20], g1[20:]], [g2[:20], g2[20:]]
    c1, c2 = (float(c) for c in min_norm_coefficients(*split))
    assert c1 + c2 == pytest.approx(1.0)
    assert 0.0 <= c1 <= 1.0
    assert c1 == pytest.approx(_brute_force_alpha(g1, g2), abs=2e-5)


def test_min_norm_edge_cases():
    g = [np.array([1.0, -2.0, 3.0], "float32")]
    assert [float(c) for c in min_norm_coefficients(g, g)] == [1.0, 0.0]          # g1 == g2
    # alpha* < 0 -> (0, 1): g2 is itself the min-norm point (g2 short, g1 long and aligned).
    c = min_norm_coefficients([np.array([10.0, 0.0])], [np.array([1.0, 0.0])])
    assert [float(x) for x in c] == [0.0, 1.0]
    # alpha* > 1 -> (1, 0)
    c = min_norm_coefficients([np.array([1.0, 0.0])], [np.array([10.0, 0.0])])
    assert [float(x) for x in c] == [1.0, 0.0]
    # orthogonal equal-norm gradients -> (1/2, 1/2)
    c = min_norm_coefficients([np.array([1.0, 0.0])], [np.array([0.0, 1.0])])
    np.testing.assert_allclose([float(x) for x in c], [0.5, 0.5])
    # None stands for a zero block of g2
    with_none = min_norm_coefficients([np.array([1.0, 0.0]), np.array([3.0])], [np.array([0.0, 1.0]), None])
    explicit = min_norm_coefficients([np.array([1.0, 0.0, 3.0])], [np.array([0.0, 1.0, 0.0])])
    np.testing.assert_allclose([float(x) for x in with_none], [float(x) for x in explicit], rtol=1e-6)


def test_analytic_penalty_gradient_equals_autodiff():
    model = models.lenet5("multi", seed=1)
    dense = models.dense_layers(model)
    # put exact zeros in a kernel to check sign(0) = 0, as autodiff of abs gives
    dense[0].kernel.assign(np.where(np.abs(dense[0].kernel.numpy()) < 0.01, 0.0, dense[0].kernel.numpy()))
    penalty = SparsityObjective.from_model(model, conv_l2=True)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss2 = tf.add_n([tf.reduce_sum(tf.abs(v)) for v in variables if v.path in penalty.l1_paths]
                         + [c * tf.reduce_sum(tf.square(v)) for v in variables
                            for p, c in penalty.l2_coefficients.items() if v.path == p])
    autodiff = tape.gradient(loss2, [v.value for v in variables])
    assert float(loss2) == pytest.approx(penalty.value(model), rel=1e-5)
    for variable, expected in zip(variables, autodiff):
        role, coefficient = penalty.role(variable)
        analytic = SparsityObjective.gradient(role, coefficient, variable)
        if analytic is None:
            assert expected is None or not np.any(expected.numpy())
        else:
            np.testing.assert_allclose(keras.ops.convert_to_numpy(analytic), expected.numpy(), rtol=1e-6, atol=1e-9)
    assert set(penalty.l1_paths) == {"denselayer1/kernel", "denselayer2/kernel", "denselayer3/kernel"}
    assert penalty.l2_coefficients == {"conv1/kernel": pytest.approx(1e-4), "conv2/kernel": pytest.approx(1e-4)}
    assert SparsityObjective.from_model(model, conv_l2=False).l2_coefficients == {}


def _train(optimizer_factory, data, steps_batch=16, seed=0, variant="multi"):
    model = models.lenet5(variant, seed=seed)
    optimizer = optimizer_factory(model)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = data
    model.fit(x, y, batch_size=steps_batch, epochs=2, shuffle=False, verbose=0)
    return model, optimizer


@pytest.mark.parametrize("ours, reference", [
    (lambda m: MAdam(1e-3, SparsityObjective.from_model(m), weights=(1, 0)), lambda m: keras.optimizers.Adam(1e-3)),
    (lambda m: SMGD(1e-2, SparsityObjective.from_model(m), weights=(1, 0), momentum=0.9),
     lambda m: keras.optimizers.SGD(1e-2, momentum=0.9)),
    (lambda m: MRMSprop(1e-3, SparsityObjective.from_model(m), weights=(1, 0)), lambda m: RMSpropKeras2(1e-3)),
], ids=["madam=adam", "smgd=sgd", "mrmsprop=rmsprop_keras2"])
def test_fixed_weights_one_zero_reduce_to_single_objective(ours, reference, tiny_images):
    a, _ = _train(ours, tiny_images)
    b, _ = _train(reference, tiny_images)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


def test_rmsprop_keras2_formula():
    variable = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer = RMSpropKeras2(learning_rate=0.1, rho=0.9, epsilon=1e-7)
    grads = [np.array([0.5, 0.25], "float32"), np.array([-1.0, 2.0], "float32")]
    a, w = np.zeros(2), np.array([1.0, -2.0])
    for g in grads:
        optimizer.apply([g], [variable])
        a = 0.9 * a + 0.1 * g**2
        w = w - 0.1 * g / (np.sqrt(a) + 1e-7)   # epsilon outside the root (Keras 2.3.1)
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-6)


def _reference_step(model, x, y, state, kind, lr, t):
    """One multi-gradient step in numpy, from the formulas of REPRODUCTION_NOTES.md §2 (independent of helpers)."""
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        probs = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs)) + tf.add_n(model.losses)
    g1 = [g.numpy().astype(np.float64) for g in tape.gradient(loss, [v.value for v in variables])]
    w = [v.numpy().astype(np.float64) for v in variables]
    g2 = []
    for v, wv in zip(variables, w):
        if "dense" in v.path and v.path.endswith("kernel"):
            g2.append(np.sign(wv))
        elif v.path.startswith("conv") and v.path.endswith("kernel"):
            g2.append(2 * 1e-4 * wv)
        else:
            g2.append(np.zeros_like(wv))
    f1, f2 = np.concatenate([g.ravel() for g in g1]), np.concatenate([g.ravel() for g in g2])
    c1 = np.clip((f2 - f1) @ f2 / ((f2 - f1) @ (f2 - f1)), 0, 1)
    c2 = 1 - c1
    new = []
    for i, (wv, a, b) in enumerate(zip(w, g1, g2)):
        s = state.setdefault(i, {k: np.zeros_like(wv) for k in ("m1", "v1", "m2", "v2", "mom")})
        if kind == "madam-joint":  # one stream on the combined gradient
            d = c1 * a + c2 * b
            s["m1"] = 0.9 * s["m1"] + 0.1 * d
            s["v1"] = 0.999 * s["v1"] + 0.001 * d**2
            lr_t = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            new.append(wv - lr_t * s["m1"] / (np.sqrt(s["v1"]) + 1e-7))
        elif kind == "madam":
            for m, v, g in (("m1", "v1", a), ("m2", "v2", b)):
                s[m] = 0.9 * s[m] + 0.1 * g
                s[v] = 0.999 * s[v] + 0.001 * g**2
            lr_t = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            new.append(wv - lr_t * (c1 * s["m1"] / (np.sqrt(s["v1"]) + 1e-7) + c2 * s["m2"] / (np.sqrt(s["v2"]) + 1e-7)))
        else:  # smgd with momentum 0.9
            s["mom"] = 0.9 * s["mom"] - lr * (c1 * a + c2 * b)
            new.append(wv + s["mom"])
    return new, (c1, c2)


@pytest.mark.parametrize("kind", ["madam", "smgd", "madam-joint"])
def test_min_norm_update_matches_numpy_reference(kind, tiny_images):
    x, y = tiny_images
    lr = 1e-2 if kind == "smgd" else 1e-3
    ours = models.lenet5("multi", seed=2)
    reference = models.lenet5("multi", seed=2)
    penalty = SparsityObjective.from_model(ours)
    optimizer = {"madam": lambda: MAdam(lr, penalty), "madam-joint": lambda: MAdam(lr, penalty, scalarization="joint"),
                 "smgd": lambda: SMGD(lr, penalty, momentum=0.9)}[kind]()
    ours.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    state = {}
    for t in range(1, 4):
        xb, yb = x[(t - 1) * 16:t * 16], y[(t - 1) * 16:t * 16]
        expected, (c1, c2) = _reference_step(reference, xb, yb, state, kind, lr, t)
        ours.train_on_batch(xb, yb)
        assert float(optimizer.c2.numpy()) == pytest.approx(c2, rel=1e-3, abs=1e-9)
        for variable, value in zip(ours.trainable_variables, expected):
            np.testing.assert_allclose(variable.numpy(), value, rtol=1e-4, atol=2e-7)
        for variable, value in zip(reference.trainable_variables, expected):
            variable.assign(value.astype("float32"))


def test_bad_optimizer_arguments():
    model = models.lenet5()
    penalty = SparsityObjective.from_model(model)
    with pytest.raises(TypeError, match="SparsityObjective"):
        MAdam(1e-3, penalty=None)
    with pytest.raises(ValueError, match="min-norm"):
        MAdam(1e-3, penalty, weights="max-norm")
    with pytest.raises(ValueError, match="not both 0"):
        SMGD(1e-2, penalty, weights=(0, 0))
    with pytest.raises(ValueError, match=">= 0"):
        SMGD(1e-2, penalty, weights=(-1, 2))
    with pytest.raises(ValueError, match="pair"):
        SMGD(1e-2, penalty, weights=(1, 2, 3))
    with pytest.raises(ValueError, match="momentum"):
        SMGD(1e-2, penalty, momentum=1.5)
    # a penalty built for another model is caught when the optimizer is built
    other = SparsityObjective(["somelayer/kernel"])
    wrong = models.lenet5()
    wrong.compile(optimizer=MAdam(1e-3, other), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="does not have"):
        wrong.optimizer.build(wrong.trainable_variables)


def test_optimizer_config_round_trip():
    model = models.lenet5()
    optimizer = MAdam(1e-3, SparsityObjective.from_model(model), weights=(0.9, 0.1))
    clone = MAdam.from_config(optimizer.get_config())
    assert clone.fixed_weights == (0.9, 0.1)
    assert clone.penalty.get_config() == optimizer.penalty.get_config()


def test_old_name_densepenalty_still_works():
    """``DensePenalty`` (``SparsityObjective``'s old name) is the same class, and a config saved with it loads."""
    from helpers.objectives import DensePenalty
    assert DensePenalty is SparsityObjective
    model = models.lenet5()
    saved = MAdam(1e-3, DensePenalty.from_model(model)).get_config()
    clone = MAdam.from_config(saved)
    assert isinstance(clone.penalty, SparsityObjective)
    assert clone.penalty.get_config() == saved["penalty"]


# ---------------------------------------------------------------------------------------------
# Scalarization: "joint" (one moment stream on c1 g1 + c2 g2) against Keras on the weighted sum
# ---------------------------------------------------------------------------------------------


def _weighted_sum_reference(reference_optimizer, data, lambdas, seed, steps=4, batch=16):
    """Keras' own optimizer on lambda1 (CE + conv L2) + lambda2 (L1 dense + conv L2), by autodiff."""
    model = models.lenet5("multi", seed=seed)
    penalty = SparsityObjective.from_model(model, conv_l2=True)
    x, y = data
    for t in range(steps):
        xb, yb = x[t * batch:(t + 1) * batch], y[t * batch:(t + 1) * batch]
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            probs = model(xb, training=True)
            loss1 = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, probs)) + tf.add_n(model.losses)
            loss2 = tf.add_n([tf.reduce_sum(tf.abs(v)) for v in variables if v.path in penalty.l1_paths]
                             + [c * tf.reduce_sum(tf.square(v)) for v in variables
                                for p, c in penalty.l2_coefficients.items() if v.path == p])
            loss = lambdas[0] * loss1 + lambdas[1] * loss2
        grads = tape.gradient(loss, [v.value for v in variables])
        reference_optimizer.apply(grads, variables)
    return model


def _ours_steps(optimizer_factory, data, seed, steps=4, batch=16):
    model = models.lenet5("multi", seed=seed)
    optimizer = optimizer_factory(model)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = data
    for t in range(steps):
        model.train_on_batch(x[t * batch:(t + 1) * batch], y[t * batch:(t + 1) * batch])
    return model


@pytest.mark.parametrize("lambdas", [(0.7, 0.3), (1.0, 9e-4)])
@pytest.mark.parametrize("kind", ["madam", "mrmsprop"])
def test_joint_fixed_weights_equal_keras_on_weighted_sum(kind, lambdas, tiny_images):
    if kind == "madam":
        ours = _ours_steps(lambda m: MAdam(1e-3, SparsityObjective.from_model(m), weights=lambdas,
                                           scalarization="joint"), tiny_images, seed=3)
        reference = _weighted_sum_reference(keras.optimizers.Adam(1e-3, epsilon=1e-7), tiny_images, lambdas, seed=3)
    else:
        ours = _ours_steps(lambda m: MRMSprop(1e-3, SparsityObjective.from_model(m), weights=lambdas,
                                              scalarization="joint"), tiny_images, seed=3)
        reference = _weighted_sum_reference(RMSpropKeras2(1e-3), tiny_images, lambdas, seed=3)
    for wa, wb in zip(ours.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["madam", "mrmsprop"])
def test_separate_differs_from_weighted_sum(kind, tiny_images):
    """The published (separate) scalarization is *not* Keras on the weighted sum: the test above
    would be vacuous if both scalarizations computed the same thing."""
    lambdas = (0.7, 0.3)
    cls, reference_optimizer = (MAdam, keras.optimizers.Adam(1e-3, epsilon=1e-7)) if kind == "madam" else \
        (MRMSprop, RMSpropKeras2(1e-3))
    ours = _ours_steps(lambda m: cls(1e-3, SparsityObjective.from_model(m), weights=lambdas), tiny_images, seed=3)
    reference = _weighted_sum_reference(reference_optimizer, tiny_images, lambdas, seed=3)
    largest = max(float(np.max(np.abs(a - b))) for a, b in zip(ours.get_weights(), reference.get_weights()))
    assert largest > 1e-4


@pytest.mark.parametrize("weights", ["min-norm", (0.6, 0.4)])
def test_smgd_scalarizations_coincide(weights, tiny_images):
    """SMGD is linear in the gradient: separate and joint are one update."""
    runs = [_ours_steps(lambda m: SMGD(1e-2, SparsityObjective.from_model(m), weights=weights, momentum=0.9,
                                       scalarization=s), tiny_images, seed=4) for s in ("separate", "joint")]
    for wa, wb in zip(runs[0].get_weights(), runs[1].get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_scalarization_argument_and_config():
    model = models.lenet5()
    penalty = SparsityObjective.from_model(model)
    with pytest.raises(ValueError, match="scalarization"):
        MAdam(1e-3, penalty, scalarization="mixed")
    clone = MRMSprop.from_config(MRMSprop(1e-3, penalty, scalarization="joint").get_config())
    assert clone.scalarization == "joint"

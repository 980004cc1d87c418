"""ITP invariants (REPRODUCTION_NOTES.md §§3, 11): checked after every single training step."""

import keras
import numpy as np
import pytest

from helpers import models
from helpers.callbacks import NonzeroTracker
from helpers.objectives import SparsityObjective
from helpers.optimizers import MAdam, SMGD
from helpers.pruning import PruningConstraint, apply_threshold, disable_itp, enable_itp, nonzero_counts

TAU = 1e-3


class StepChecker(keras.callbacks.Callback):
    """After every batch: dense entries with |w| <= tau are exactly 0; conv/BN keep small values."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        for layer in models.dense_layers(self.model):
            for w in (layer.kernel.numpy(), layer.bias.numpy()):
                small = np.abs(w) <= TAU
                assert np.all(w[small] == 0.0), f"{layer.name}: {np.count_nonzero(w[small])} small nonzeros"
        self.steps += 1


@pytest.mark.parametrize("optimizer", ["madam", "smgd", "adam", "sgd"])
def test_every_step_prunes_dense_and_only_dense(optimizer, tiny_images):
    model = models.vgg("multi", seed=0, input_shape=(28, 28, 1)) if optimizer == "madam" else models.lenet5("multi")
    enable_itp(model, TAU)
    penalty = SparsityObjective.from_model(model)
    opt = {"madam": lambda: MAdam(1e-3, penalty), "smgd": lambda: SMGD(1e-2, penalty, momentum=0.9),
           "adam": lambda: keras.optimizers.Adam(1e-3), "sgd": lambda: keras.optimizers.SGD(1e-2, momentum=0.9)}
    model.compile(optimizer=opt[optimizer](), loss="sparse_categorical_crossentropy")
    # conv / BN weights with tiny magnitudes must survive: plant some.
    others = [v for v in model.trainable_variables if not any(v is l.kernel or v is l.bias
                                                              for l in models.dense_layers(model))]
    for v in others:
        v.assign(np.full(v.shape, 5e-4, "float32"))
    checker = StepChecker()
    x, y = tiny_images
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[checker])
    assert checker.steps == 8
    for v in others:
        value = v.numpy()
        assert np.count_nonzero(value) == value.size, f"{v.path} was pruned"
        assert v.constraint is None


def test_initial_prune_fraction_matches_glorot_limit():
    # P(|w| <= tau) = tau / limit for Glorot-uniform, limit = sqrt(6 / (fan_in + fan_out)).
    expected = {"denselayer1": 0.0093, "denselayer2": 0.0058, "denselayer3": 0.0040}
    fractions = {name: [] for name in expected}
    for seed in range(5):
        model = models.lenet5(seed=seed)
        enable_itp(model, TAU)
        for name, (nnz, bias_nnz, size) in nonzero_counts(model).items():
            fractions[name].append(1 - nnz / size)
            assert bias_nnz == 0  # biases start at 0: all pruned
    for name, value in expected.items():
        assert np.mean(fractions[name]) == pytest.approx(value, rel=0.25 if name != "denselayer3" else 0.6)
    vgg = models.vgg()
    apply_threshold(vgg, TAU)
    nnz, _, size = nonzero_counts(vgg)["denselayer"]
    assert 1 - nnz / size == pytest.approx(0.0185, rel=0.2)


def test_itp_leaves_optimizer_slots_untouched(tiny_images):
    """One step with and without the ITP constraint from the same state: slots are identical,
    weights differ only where the constraint zeroed small dense entries."""
    x, y = tiny_images
    results = []
    for itp in (True, False):
        model = models.lenet5(seed=5)
        apply_threshold(model, TAU)
        if itp:
            enable_itp(model, TAU, prune_now=False)
        optimizer = MAdam(1e-3, SparsityObjective.from_model(model))
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.train_on_batch(x[:16], y[:16])
        results.append(([v.numpy() for v in model.trainable_variables], [v.numpy() for v in optimizer.variables]))
    (w_itp, s_itp), (w_plain, s_plain) = results
    for a, b in zip(s_itp, s_plain):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(w_itp, w_plain):
        pruned = a != b
        assert np.all(a[pruned] == 0) and np.all(np.abs(b[pruned]) <= TAU)
        np.testing.assert_array_equal(a[~pruned], b[~pruned])


def test_threshold_constraint_and_switching():
    constraint = PruningConstraint(TAU)
    w = np.array([-2e-3, -1e-3, -5e-4, 0.0, 1e-3, 1.0001e-3, 0.5], "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(constraint(w)),
                                  np.array([-2e-3, 0, 0, 0, 0, 1.0001e-3, 0.5], "float32"))
    with pytest.raises(ValueError, match="threshold"):
        PruningConstraint(-1e-3)
    with pytest.raises(ValueError, match="threshold"):
        enable_itp(models.lenet5(), threshold=-0.1)
    model = models.lenet5()
    enable_itp(model, prune_now=False)
    assert all(layer.kernel.constraint is not None for layer in models.dense_layers(model))
    disable_itp(model)
    assert all(layer.kernel.constraint is None for layer in models.dense_layers(model))
    assert PruningConstraint.from_config(constraint.get_config()).threshold == TAU


def test_nonzero_tracker_records_epoch_zero_and_each_epoch(tiny_images):
    model = models.lenet5()
    enable_itp(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    tracker = NonzeroTracker()
    x, y = tiny_images
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[tracker])
    assert len(tracker.kernel["denselayer1"]) == 4  # before training + 3 epochs
    fresh = models.lenet5()
    apply_threshold(fresh)
    assert tracker.kernel["denselayer1"][0] == nonzero_counts(fresh)["denselayer1"][0]  # after the initial prune
    assert history.history["nnz/denselayer1"] == tracker.kernel["denselayer1"][1:]
    assert tracker.kernel["denselayer1"][-1] == nonzero_counts(model)["denselayer1"][0]


def test_disable_itp_retraces_so_the_next_fit_no_longer_prunes(tiny_images):
    """Constraints are read when Keras traces the train step: after ``disable_itp`` a model
    that was already trained with ITP must not keep pruning (lr 0: only a constraint can
    change a weight)."""
    x, y = tiny_images
    model = models.lenet5(seed=0)
    enable_itp(model, TAU)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)  # traces the step with ITP
    disable_itp(model)
    kernel = models.dense_layers(model)[0].kernel
    kernel.assign(np.full(kernel.shape, 5e-4, "float32"))  # all below tau
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)
    assert np.all(kernel.numpy() == 5e-4), "the traced train step still applied ITP after disable_itp"


def test_masks_replaced_in_place_keep_the_traced_step_and_hold_from_the_next_fit(tiny_images):
    """Attaching new masks to variables that already carry one only assigns the mask variables:
    on TensorFlow the traced train step reads them, so it is kept (no retrace: the budget
    search re-attaches masks every episode), and the next fit holds the *new* mask, not the old.
    (On JAX, whose jitted step holds the mask as a constant, it is retraced: tests/backend_worker.py.)"""
    from helpers.pruning import attach_masks, masks_for

    x, y = tiny_images
    model = models.lenet5(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = model.get_weights()
    first = masks_for(model, 0.5)
    attach_masks(model, first)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    traced = model.train_function
    assert traced is not None
    second = {key: ~mask for key, mask in first.items()}  # every kept weight pruned and vice versa
    second = {key: mask if mask.any() else first[key] for key, mask in second.items()}
    model.set_weights(start)
    attach_masks(model, second)
    assert model.train_function is traced, "replacing masks in place retraced the train step"
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for key, mask in second.items():
        weight = model.get_layer(key.split("/")[0]).kernel.numpy()
        assert np.all(weight[~mask] == 0), f"{key}: the old mask's step let pruned weights back"
        assert np.count_nonzero(weight[mask]) > 0.9 * mask.sum(), f"{key}: the old mask still prunes"
    attach_masks(model, {**second, "denselayer1/bias": np.ones(model.get_layer("denselayer1").bias.shape, bool)})
    assert model.train_function is None  # a new constraint (the bias had none): retraced


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_threshold_constraint_never_hides_non_finite_weights(bad):
    """A NaN weight must stay NaN (the runner then records a failed run), not become a pruned 0."""
    w = np.array([bad, 5e-4, 0.5], "float32")
    out = keras.ops.convert_to_numpy(PruningConstraint(TAU)(w))
    np.testing.assert_array_equal(out, np.array([bad, 0.0, 0.5], "float32"))


def test_itp_and_masks_share_one_constraint_and_each_switch_retraces(tiny_images):
    """attach_masks after enable_itp keeps ITP pruning; detach removes only the mask; every switch
    drops the traced train step."""
    from helpers.pruning import attach_masks, detach_masks, masks_for

    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    enable_itp(model, TAU)
    assert model.train_function is None
    dense1 = model.get_layer("denselayer1")
    masks = masks_for(model, 0.5, layers=["denselayer1"])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    attach_masks(model, masks)
    assert model.train_function is None
    constraint = dense1.kernel.constraint
    assert isinstance(constraint, PruningConstraint) and constraint.threshold == TAU and constraint.mask is not None
    assert dense1.kernel_constraint is constraint  # so it is saved with the layer's config
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    kernel = dense1.kernel.numpy()
    assert np.all(kernel[~masks["denselayer1/kernel"]] == 0)
    assert not np.any((np.abs(kernel) <= TAU) & (kernel != 0))  # ITP still prunes the kept entries
    detach_masks(model)
    assert model.train_function is None
    assert dense1.kernel.constraint.threshold == TAU and dense1.kernel.constraint.mask is None
    attach_masks(model, masks)
    disable_itp(model)
    assert dense1.kernel.constraint.threshold is None and dense1.kernel.constraint.mask is not None
    assert model.get_layer("denselayer2").kernel.constraint is None
    detach_masks(model)
    assert all(layer.kernel.constraint is None for layer in models.dense_layers(model))

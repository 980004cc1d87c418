"""helpers.pruning: magnitude masks, masks kept during retraining, gradual and iterative pruning,
sparsity measures, compaction and costs."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import models, pruning
from helpers.pruning import prunable_layers
from helpers.pruning import compact, costs


def small_mlp(seed=0):
    return models.mlp(seed=seed, hidden=(64, 48, 32, 16))


def hidden_masks(model, amount, **kwargs):
    """``pruning.masks_for`` on every prunable layer but the output one (the notebooks' default)."""
    return pruning.masks_for(model, amount, ignored_layers=[pruning.output_layer(model)], **kwargs)


def test_weight_masks_prune_exactly_int_size_k_per_layer():
    model = small_mlp()
    masks = hidden_masks(model, 0.7)
    assert set(masks) == {f"hidden{i}/kernel" for i in range(1, 5)}  # output layer excluded
    for layer in prunable_layers(model):
        mask, kernel = masks[layer.kernel.path], layer.kernel.numpy()
        assert (~mask).sum() == int(kernel.size * 0.7)
        assert np.abs(kernel[~mask]).max() <= np.abs(kernel[mask]).min()  # the smallest ones went
    with_bias = hidden_masks(model, 0.5, include_bias=True)  # project 002's quirk
    assert (~with_bias["hidden1/bias"]).sum() == 32


def test_global_masks_use_one_threshold():
    model = small_mlp()
    masks = hidden_masks(model, 0.6, scope="global")
    kept = np.concatenate([np.abs(l.kernel.numpy())[masks[l.kernel.path]] for l in prunable_layers(model)])
    dropped = np.concatenate([np.abs(l.kernel.numpy())[~masks[l.kernel.path]] for l in prunable_layers(model)])
    assert dropped.max() <= kept.min()
    assert dropped.size == int((dropped.size + kept.size) * 0.6)
    per_layer = [1 - masks[l.kernel.path].mean() for l in prunable_layers(model)]
    assert max(per_layer) - min(per_layer) > 0.01  # layers end up with different sparsities


def test_unit_masks_drop_whole_columns_by_l2_norm():
    model = small_mlp()
    masks = hidden_masks(model, 0.25, granularity="unit", members="producers")
    kernel = model.get_layer("hidden2").kernel.numpy()
    keep_units = masks["hidden2/bias"]
    assert (~keep_units).sum() == 12
    assert np.all(masks["hidden2/kernel"] == keep_units[None, :])
    norms = np.linalg.norm(kernel, axis=0)
    assert norms[~keep_units].max() <= norms[keep_units].min()
    # the whole group (Torch-Pruning's default): a unit is scored over its incoming column and its
    # outgoing row, and both are masked
    coupled = hidden_masks(model, 0.25, granularity="unit")
    keep2, keep3 = coupled["hidden2/bias"], coupled["hidden3/bias"]
    np.testing.assert_array_equal(coupled["hidden3/kernel"], keep2[:, None] & keep3[None, :])
    outgoing = model.get_layer("hidden3").kernel.numpy()
    group_norms = np.sqrt(np.square(kernel).sum(axis=0) + np.square(outgoing).sum(axis=1))
    assert group_norms[~keep2].max() <= group_norms[keep2].min()
    cnn = models.cifar_cnn(width=0.05)
    filters = pruning.masks_for(cnn, 0.5, granularity="filter", layers=["conv2"])
    assert filters["conv2/kernel"].shape == tuple(cnn.get_layer("conv2").kernel.shape)
    assert (~filters["conv2/bias"]).sum() == int(cnn.get_layer("conv2").filters * 0.5)


def test_masks_stay_applied_during_retraining(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    masks = hidden_masks(model, 0.8)
    pruning.attach_masks(model, masks)
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
    masks = hidden_masks(model, 0.8)
    pruning.attach_masks(model, masks)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    kernel = model.get_layer("hidden1").kernel.numpy()
    assert np.all(kernel[~masks["hidden1/kernel"]] == 0)


def test_gradual_magnitude_pruning_reaches_target_on_schedule(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    gmp = pruning.GradualMagnitudePruning(model, final_sparsity=0.9, begin_step=0, end_step=12, frequency=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[gmp])  # 16 steps
    steps = [s for s, _ in gmp.sparsity_log]
    assert steps == [4, 8, 12]  # tfmot: step t is the t-th batch (1-based), step 0 never comes
    targets = [t for _, t in gmp.sparsity_log]
    assert targets[-1] == pytest.approx(0.9) and targets == sorted(targets)
    assert targets[0] == pytest.approx(0.9 * (1 - (1 - 4 / 12) ** 3))
    report = pruning.sparsity(model, include_output=False)
    for name in ("hidden1", "hidden2", "hidden3", "hidden4"):
        assert report[name] == pytest.approx(0.9, abs=0.02)


def tfmot_sparsity(step, initial, final, begin, end, power=3):
    """tfmot's documented PolynomialDecay, in float64: final + (initial - final)(1 - p)^power."""
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1 - p) ** power


def test_polynomial_sparsity_is_tfmots_formula():
    for initial, final, begin, end, power in [(0.0, 0.8, 0, 100, 3), (0.0, 0.97675, 0, 39375, 3),
                                              (0.2, 0.5, 7, 50, 2), (0.5, 0.9, 100, 1000, 1)]:
        for step in list(range(0, end + 20)) + [10 * end]:
            ours = pruning.polynomial_sparsity(step, initial, final, begin, end, power)
            assert ours == pytest.approx(tfmot_sparsity(step, initial, final, begin, end, power), abs=1e-6)
    assert pruning.polynomial_sparsity(0, 0.0, 0.8, 0, 100) == 0.0
    assert pruning.polynomial_sparsity(500, 0.0, 0.8, 0, 100) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        pruning.polynomial_sparsity(0, 0, 0.5, 10, 10)


def test_kept_count_and_mask_follow_tfmots_rounding_and_ties():
    assert pruning.kept_count(10, 0.25) == 8  # round(7.5) -> 8, half to even
    assert pruning.kept_count(10, 0.35) == 6  # round(6.5) -> 6
    assert pruning.kept_count(10, 0.999) == 1  # at least one is kept
    assert pruning.kept_count(48_000, 0.97675) == round(48_000 * (1 - 0.97675))
    w = np.array([0.5, -0.1, 0.1, 0.3, -0.05, 0.2], np.float32)
    assert pruning.top_magnitude_mask(w, 0.5).tolist() == [True, False, False, True, False, True]
    # k = 4 cuts between the two |0.1|: ties at the threshold are all kept
    assert pruning.top_magnitude_mask(w, 0.4).sum() == 5
    assert pruning.top_magnitude_mask(np.zeros(5, np.float32), 0.6).all()  # threshold 0 keeps all


def test_schedule_steps_and_counts_equal_tfmot_itself(tmp_path):
    """tfmot's own PolynomialDecay and _update_mask (a separate process, legacy Keras)."""
    pytest.importorskip("tensorflow_model_optimization")
    pytest.importorskip("tf_keras")
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(120, 84)).astype(np.float32)
    weights[:3, :3] = 0.25  # a tie
    np.save(tmp_path / "w.npy", weights)
    config = dict(initial=0.1, final=0.93, begin=3, end=400, frequency=7)
    script = f"""
import json, numpy as np, tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_schedule
c = {config!r}
schedule = pruning_schedule.PolynomialDecay(c["initial"], c["final"], c["begin"], c["end"], frequency=c["frequency"])
w = tf.constant(np.load("{tmp_path / 'w.npy'}"))
out = {{"due": [], "sparsity": [], "kept": []}}
for step in range(0, 420):
    due, s = schedule(tf.constant(step, tf.int64))
    out["due"].append(bool(due)); out["sparsity"].append(float(s))
    if bool(due):
        p = pruning_impl.Pruning(lambda: tf.constant(step, tf.int64), [], schedule, (1, 1), "AVG")
        out["kept"].append(np.flatnonzero(p._update_mask(w)[1].numpy().ravel()).tolist())
print(json.dumps(out))
"""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tfmot = json.loads(done.stdout.strip().splitlines()[-1])
    model = keras.Sequential([keras.Input((120,)), keras.layers.Dense(84, name="d"), keras.layers.Dense(2)])
    gmp = pruning.GradualMagnitudePruning(model, config["final"], config["end"], config["initial"],
                                            config["begin"], config["frequency"])
    due = [gmp.due(step) for step in range(420)]
    assert due == tfmot["due"]
    ours = [pruning.polynomial_sparsity(step, config["initial"], config["final"], config["begin"], config["end"])
            for step in range(420)]
    np.testing.assert_allclose(ours, tfmot["sparsity"], rtol=0, atol=1e-7)
    steps = [step for step in range(420) if due[step]]
    kept = [np.flatnonzero(pruning.top_magnitude_mask(weights, ours[step]).ravel()).tolist() for step in steps]
    assert kept == tfmot["kept"]


def tfmot_reference_masks(values, sparsity):
    """tfmot's _update_mask by hand: top_k of |w|, threshold at the k-th, keep |w| >= threshold."""
    flat = np.abs(values).ravel()
    k = max(int(np.round(np.float32(flat.size) * (np.float32(1) - np.float32(sparsity)))), 1)
    threshold = np.sort(flat)[::-1][k - 1]
    return (flat >= threshold).reshape(values.shape)


GMP_RUN = dict(final_sparsity=0.3, end_step=17, initial_sparsity=0.1, begin_step=2, frequency=3)


def test_gradual_magnitude_pruning_matches_tfmots_rules_step_by_step(tiny_images):
    """Our callback under ``fit`` against tfmot's rules replayed by hand with ``train_on_batch``:
    step t is the t-th batch, masks re-ranked on the raw kernels (pruned entries moved by the
    last optimizer step), w <- w * mask before the forward pass, full gradients, re-mask at epoch
    end. Masks and weights must agree at every step."""
    x, y = tiny_images
    batch, epochs = 8, 3  # 8 steps an epoch: t = 8 (last batch) and 17 (first batch) are updates
    ours, reference = small_mlp(), small_mlp()
    gmp = pruning.GradualMagnitudePruning(ours, **GMP_RUN)
    trace = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, b, logs=None):  # after gmp's: the masks of this step
            trace.append({path: mask.copy() for path, mask in gmp.masks.items()})

    for model in (ours, reference):  # steps large enough for pruned weights to pass the threshold
        model.compile(optimizer=keras.optimizers.Adam(0.03), loss="sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0, callbacks=[gmp, Record()])

    kernels = [layer.kernel for layer in prunable_layers(reference)]
    masks = {v.path: np.ones(v.shape, bool) for v in kernels}
    step, regrown = 0, 0
    for epoch in range(epochs):
        for start in range(0, len(x), batch):
            step += 1
            if gmp.due(step):
                s = tfmot_sparsity(step, GMP_RUN["initial_sparsity"], GMP_RUN["final_sparsity"],
                                   GMP_RUN["begin_step"], GMP_RUN["end_step"])
                new = {v.path: tfmot_reference_masks(v.numpy(), s) for v in kernels}
                regrown += sum(int(np.sum(new[p] & ~masks[p])) for p in masks)
                masks = new
            for v in kernels:
                v.assign(v.numpy() * masks[v.path])
            for path in masks:
                np.testing.assert_array_equal(trace[step - 1][path], masks[path], err_msg=f"step {step} {path}")
            reference.train_on_batch(x[start:start + batch], y[start:start + batch])
        for v in kernels:
            v.assign(v.numpy() * masks[v.path])
    assert [s for s, _ in gmp.sparsity_log] == [2, 5, 8, 11, 14, 17]
    assert regrown > 0  # raw ranking matters: some pruned weights came back
    for a, b in zip(ours.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    for v in kernels:
        assert np.all(ours.get_layer(v.path.split("/")[0]).kernel.numpy()[~masks[v.path]] == 0)


def test_iterative_pruning_compounds(tiny_images):
    x, y = tiny_images
    model = small_mlp()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")

    def retrain(m, target):
        m.fit(x, y, batch_size=32, epochs=1, verbose=0)

    record = pruning.iterative_pruning(model, hidden_masks, [0.5, 0.75, 0.9], retrain)
    assert [t for t, _ in record] == [0.5, 0.75, 0.9]
    assert pruning.sparsity(model, include_output=False)["total"] == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="non-decreasing"):
        pruning.iterative_pruning(model, hidden_masks, [0.5, 0.2], retrain)


def test_effective_sparsity_counts_dead_units():
    model = small_mlp()
    pruning.apply_masks(model, hidden_masks(model, 0.5, granularity="unit", members="producers"))
    nominal = pruning.sparsity(model)["total"]
    # half the units of each hidden layer are dead, so half the rows of the next layer are dead too
    sizes = [784 * 64, 64 * 48, 48 * 32, 32 * 16, 16 * 10]
    alive = [784 * 32, 32 * 24, 24 * 16, 16 * 8, 8 * 10]
    assert pruning.effective_sparsity(model) == pytest.approx(1 - sum(alive) / sum(sizes))
    assert pruning.effective_sparsity(model) > nominal


def test_bad_pruning_arguments():
    model = small_mlp()
    with pytest.raises(ValueError, match="amount"):
        hidden_masks(model, 1.5)
    with pytest.raises(ValueError, match="no prunable"):
        pruning.masks_for(model, 0.5, layers=["conv9"])
    with pytest.raises(ValueError, match="shape"):
        pruning.apply_masks(model, {"hidden1/kernel": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="does not have"):
        pruning.apply_masks(model, {"nope/kernel": np.ones((2, 2), bool)})


@pytest.mark.parametrize("build, shape", [
    (lambda: small_mlp(), (28, 28, 1)),
    (lambda: models.cifar_cnn(width=0.06), (32, 32, 3)),
    (lambda: models.lenet5(), (28, 28, 1)),
], ids=["mlp", "cifar_cnn", "lenet5"])
def test_compaction_preserves_outputs_and_saves(build, shape, tmp_path, rng):
    model = build()
    pruning.apply_masks(model, hidden_masks(model, 0.5, granularity="unit"))
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
    pruning.apply_masks(model, pruning.masks_for(model, 0.5, granularity="filter", layers=["c1", "c2"]))
    small, report = compact(model)
    assert [r["kept"] for r in report] == [3, 2, 5]
    x = rng.random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    # VGG: with BN at its initial statistics a dead filter stays exactly 0, so it compacts...
    vgg = models.vgg()
    pruning.apply_masks(vgg, hidden_masks(vgg, 0.5, granularity="unit"))
    images = rng.random((4, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(compact(vgg)[0].predict_on_batch(images), vgg.predict_on_batch(images), atol=1e-5)
    # ... but a nonzero BN shift makes it a constant feeding a 'same'-padded conv: not exact, refused
    # ... and with group masks the readers' input slices are zero too, so whatever BN adds to a
    # removed channel never reaches them: still exact.
    vgg.get_layer("bn1_1").beta.assign(np.full(32, 0.1, "float32"))
    np.testing.assert_allclose(compact(vgg)[0].predict_on_batch(images), vgg.predict_on_batch(images), atol=1e-5)
    # Producer-only masks (the classic filter) leave the readers' slices: BN's shift is then a
    # constant read by a 'same'-padded conv, which no bias can replace at the borders, so those
    # filters are kept (the model stays exact) instead of being removed.
    vgg = models.vgg()
    pruning.apply_masks(vgg, hidden_masks(vgg, 0.5, granularity="unit", members="producers"))
    vgg.get_layer("bn1_1").beta.assign(np.full(32, 0.1, "float32"))
    small, report = compact(vgg)
    assert {r["layer"]: r["kept"] for r in report}["conv1_1"] == 32
    assert {r["layer"]: r["kept"] for r in report}["conv1_2"] == 16
    np.testing.assert_allclose(small.predict_on_batch(images), vgg.predict_on_batch(images), atol=1e-5)


def test_costs():
    model = models.lenet5()
    assert costs.parameters(model, nonzero_only=False) == 60_074
    # conv1: 26*26*54, conv2: 11*11*864, dense: 48000 + 10080 + 840
    assert costs.flops(model) == 26 * 26 * 54 + 11 * 11 * 864 + 48_000 + 10_080 + 840
    pruning.apply_masks(model, pruning.masks_for(model, 0.5, layers=["denselayer1"]))
    assert costs.flops(model, nonzero_only=True) < costs.flops(model)
    assert costs.latency(model, batch_size=4, repeats=3, warmup=1) > 0


def test_compaction_through_a_residual_add_and_around_a_layer_it_cannot_follow():
    import keras

    from helpers.pruning import DependencyGraph, compact

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = keras.layers.Add(name="residual_add")([x, y])
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    masks = pruning.masks_for(model, 0.5, granularity="filter")
    assert not masks["conv_a/bias"][2:].all() or not masks["conv_a/bias"][:2].all()
    np.testing.assert_array_equal(masks["conv_a/bias"], masks["conv_b/bias"])  # the Add couples them
    pruning.apply_masks(model, masks)
    small, report = compact(model)
    assert {r["layer"]: r["kept"] for r in report} == {"conv_a": 2, "conv_b": 2, "head": 2}
    x = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    # LayerNormalization over the channels: removing one changes its statistics, so the graph
    # blocks the channels it reads, says why, and compaction keeps them
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="d1")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    graph = DependencyGraph.of(model)
    assert graph.groups == [] and any("LayerNormalization" in r and "norm" in r for r in graph.blocked)
    model.get_layer("d1").kernel.assign(np.zeros((4, 3), "float32"))
    assert compact(model)[1][0] == {"layer": "d1", "kept": 3, "of": 3}


def test_project003_table_prunes_the_seeds_layers_in_place_order(rng):
    """Project 003's three experiments: conv1 only, fc2 only, every kernel (the output layer too);
    its in-place pruning for increasing amounts equals one-shot masks at each amount."""
    from types import SimpleNamespace

    from helpers import experiments

    model = models.cifar_cnn(width=0.05)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = SimpleNamespace(x_test=rng.random((20, 32, 32, 3), dtype=np.float32), y_test=rng.integers(0, 10, 20))
    rows = experiments.project003_table(model, data, targets=(0.3, 0.9))
    assert [(r["experiment"], r["target"]) for r in rows] == [
        ("dense", 0.0), ("conv1 only", 0.3), ("conv1 only", 0.9), ("fc2 only", 0.3), ("fc2 only", 0.9),
        ("all layers", 0.3), ("all layers", 0.9)]
    assert rows[-1]["zip_kib"] < rows[0]["zip_kib"] and all(0 <= r["test_acc"] <= 1 for r in rows)
    trained = model.get_weights()
    pruning.apply_masks(model, pruning.masks_for(model, 0.3))
    pruning.apply_masks(model, pruning.masks_for(model, 0.9))  # in place, after the 0.3 step
    in_place = [w == 0 for w in model.get_weights()]
    model.set_weights(trained)
    pruning.apply_masks(model, pruning.masks_for(model, 0.9))
    for a, b in zip(in_place, [w == 0 for w in model.get_weights()]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.needs_data("cifar10")
def test_project003_comparison_averages_the_cached_seeds_and_trains_nothing(tmp_path, monkeypatch):
    """Project 003's printed table beside ours: mean and std over the seeds whose table is cached;
    a seed without one is reported missing, never trained (cached_only)."""
    from helpers import experiments
    from helpers.cache import cached

    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    monkeypatch.setattr(experiments.structure, "trained_model", lambda *a, **k: pytest.fail("must not train"))
    for seed, accuracy in ((0, 0.60), (1, 0.64)):
        study = experiments.StructureStudy(1.0, 2, 4, 1e-3, seed=seed)
        rows = [{"experiment": "dense", "target": 0.0, "test_acc": accuracy + 0.08, "zip_kib": 100.0}]
        rows += [{"experiment": e, "target": t, "test_acc": accuracy, "zip_kib": 50.0}
                 for e in experiments.PROJECT003_EXPERIMENTS for t in experiments.PROJECT003_TARGETS]
        cached("seed003_table", study.config(targets=list(experiments.PROJECT003_TARGETS)), lambda: rows)
    summary, missing = experiments.project003_comparison(seeds=(0, 1, 2))
    assert missing == [2]
    dense = summary[summary.experiment == "dense"].iloc[0]
    assert dense.seeds == 2 and dense.ours_mean == pytest.approx(70.0) and dense.ours_std == pytest.approx(2.828427, 1e-5)
    row = summary[(summary.experiment == "conv1 only") & (summary.target == 0.7)].iloc[0]
    assert row.seed_printed == 48.65 and row.difference == pytest.approx(62.0 - 48.65)
    assert len(summary) == 1 + 3 * 6


def test_structure_sweep_retrains_on_a_stratified_subset_and_keys_it(rng, monkeypatch, tmp_path):
    """``retrain_subset``: every retraining and GMP fine-tune sees the same stratified subset of
    that size (all test images are still scored); the subset is part of the sweep's key only when
    given, so the sweeps cached before it keep theirs."""
    from types import SimpleNamespace

    from helpers import experiments

    y_train = np.repeat(np.arange(10), 12)
    data = SimpleNamespace(name="cifar10", x_train=rng.random((120, 32, 32, 3), dtype=np.float32), y_train=y_train,
                           x_test=rng.random((30, 32, 32, 3), dtype=np.float32), y_test=rng.integers(0, 10, 30))
    seen = []
    real_fit = experiments.structure.guarded_fit

    def recording_fit(model, name, x, y, **kwargs):
        seen.append((name, np.bincount(y, minlength=10).tolist(), x.sum()))
        return real_fit(model, name, x, y, **kwargs)

    monkeypatch.setattr(experiments.structure, "guarded_fit", recording_fit)
    model = models.cifar_cnn(width=0.05)
    rows = experiments.structure_sweep(model, data, targets=[0.5], methods=["l1_unstructured"], gmp_epochs=1,
                                       batch_size=8, latency_batch=2, latency_repeats=1, progress=False,
                                       retrain_subset=20, seed=3)
    assert [name for name, *_ in seen] == ["cifar10-l1_unstructured-iterative-0.5", "cifar10-gmp-0.5"]
    assert all(counts == [2] * 10 for _, counts, _ in seen)  # 20 images, two per class
    assert seen[0][2] == seen[1][2]  # the same images each time
    assert len(rows) == 4
    with pytest.raises(ValueError, match="retrain_subset must be <= the 120 training images"):
        experiments.structure_sweep(model, data, targets=[0.5], retrain_subset=121, progress=False)

    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    study = experiments.StructureStudy(1.0, 2, 4, 1e-3, seed=1)
    sweep = dict(targets=[0.5], retrain_epochs=1, gmp_epochs=1, retrain_batch=32, latency_batch=256,
                 latency_repeats=10)
    assert "retrain_subset" not in study.sweep_config(**sweep)
    assert study.sweep_config(**sweep, retrain_subset=5000)["retrain_subset"] == 5000
    assert study.sweep(**sweep, retrain_subset=5000, cached_only=True) == (None, False)  # nothing trained


def test_an_interrupted_structure_sweep_resumes_to_the_same_rows(rng, monkeypatch, tmp_path):
    """``partial``: each finished segment is kept; a sweep interrupted inside a later segment
    resumes there and gives the rows of an uninterrupted sweep (latency aside: it is a timing).
    A partial file of another sweep is moved aside, not used."""
    import json
    from types import SimpleNamespace

    from helpers import experiments

    data = SimpleNamespace(name="cifar10", x_train=rng.random((64, 32, 32, 3), dtype=np.float32),
                           y_train=np.repeat(np.arange(10), 7)[:64], x_test=rng.random((16, 32, 32, 3), dtype=np.float32),
                           y_test=rng.integers(0, 10, 16))
    model = models.cifar_cnn(width=0.05)
    kwargs = dict(targets=[0.3, 0.6], methods=["l1_unstructured", "l2_structured"], gmp_epochs=1, batch_size=16,
                  latency_batch=2, latency_repeats=1, progress=False, seed=5)

    def without_latency(rows):
        return [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]

    reference = without_latency(experiments.structure_sweep(model, data, **kwargs, partial=tmp_path / "a.json"))
    real_fit, calls = experiments.structure.guarded_fit, []

    def failing_fit(*args, **kw):  # the l2_structured iterative chain's second retraining is interrupted
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_fit(*args, **kw)

    monkeypatch.setattr(experiments.structure, "guarded_fit", failing_fit)
    trained = model.get_weights()
    with pytest.raises(KeyboardInterrupt):
        experiments.structure_sweep(model, data, **kwargs, partial=tmp_path / "b.json")
    for before, after in zip(trained, model.get_weights()):  # left as it came: trained, no mask
        np.testing.assert_array_equal(before, after)
    kept = json.loads((tmp_path / "b.json").read_text())["segments"]
    assert list(kept) == ["dense", "l1_unstructured/one-shot", "l1_unstructured/iterative", "l2_structured/one-shot"]
    calls.clear()
    monkeypatch.setattr(experiments.structure, "guarded_fit", lambda *a, **kw: (calls.append(1), real_fit(*a, **kw))[1])
    resumed = experiments.structure_sweep(model, data, **kwargs, partial=tmp_path / "b.json")
    assert len(calls) == 2 + 2  # the l2 chain again and the two GMP targets; nothing before
    assert without_latency(resumed) == reference

    (tmp_path / "c.json").write_text(json.dumps({"segments": {"magnitude/one-shot": []}}))
    with pytest.warns(Warning, match="not segments of this sweep"):
        again = experiments.structure_sweep(model, data, **kwargs, partial=tmp_path / "c.json")
    assert without_latency(again) == reference

"""Budget-constrained pruning (``helpers.pruning.budget``): cost functions against brute force,
the environments' masks (per layer, and per dependency-graph group on a small ResNet, compacted
exactly), importances plugged in, the baselines' bisection, the Lagrangian agent on synthetic
problems, and resume."""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from helpers import experiments, models, pruning
from helpers.pruning import budget, costs


def small_cnn():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


def test_cost_functions_against_brute_force():
    model = small_cnn()
    parameter_cost, flop_cost = costs.make_cost("parameters", model), costs.make_cost("flops", model)
    assert parameter_cost(model) == 1.0 and flop_cost(model) == 1.0
    env = budget.LayerwisePruningEnv(model, np.zeros((4, 8, 8, 1)), np.zeros(4), parameter_cost)
    env.apply(env.layer_masks(np.array([0.5, 0.9, 0.25])))
    kernels = [model.get_layer(n).kernel.numpy() for n in ("conv", "hidden", "out")]
    sizes = [k.size for k in kernels]
    assert parameter_cost(model) == pytest.approx(sum(np.count_nonzero(k) for k in kernels) / sum(sizes))
    # FLOPs: a conv weight is used once per output pixel (8 x 8 here), a dense weight once.
    brute = 64 * np.count_nonzero(kernels[0]) + np.count_nonzero(kernels[1]) + np.count_nonzero(kernels[2])
    assert flop_cost(model) == pytest.approx(brute / (64 * sizes[0] + sizes[1] + sizes[2]))
    assert costs.flops(model, nonzero_only=True) == brute
    with pytest.raises(ValueError, match="budget kind"):
        costs.make_cost("energy", model)


def test_environment_masks_drop_the_smallest_and_restore_everything():
    model = small_cnn()
    before = [w.copy() for w in model.get_weights()]
    env = budget.LayerwisePruningEnv(model, np.zeros((4, 8, 8, 1)), np.zeros(4), costs.ParameterFraction(model))
    assert env.n_layers == 3 and [layer.name for layer in env.layers] == ["conv", "hidden", "out"]
    masks = env.layer_masks(np.array([0.3, 0.6, 0.0]))
    for mask, kernel, f in zip(masks, env.kernels, (0.3, 0.6, 0.0)):
        assert (~mask).sum() == int(kernel.size * f)
        if f:
            assert np.abs(kernel[~mask]).max() <= np.abs(kernel[mask]).min()
    reference = pruning.masks_for(model, 0.7, scope="global")
    for layer, mask in zip(env.layers, env.global_masks(0.7)):
        np.testing.assert_array_equal(mask, reference[layer.kernel.path])
    env.apply(masks)
    env.restore()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one fraction per layer"):
        env.layer_masks(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        env.layer_masks(np.array([0.1, 0.2, 1.5]))
    assert env.observation(0, []).shape == (env.n_features,)
    assert env.observation(2, [0.5, 0.5])[-3] == pytest.approx(0.5 * (env.sizes[0] + env.sizes[1]) / env.sizes.sum())


@pytest.mark.parametrize("method", [budget.uniform_fraction, budget.global_fraction])
def test_baselines_find_the_least_pruning_that_meets_the_budget(method):
    model = small_cnn()
    cost = costs.ParameterFraction(model)
    env = budget.LayerwisePruningEnv(model, np.zeros((4, 8, 8, 1)), np.zeros(4), cost)
    for target in (0.1, 0.35, 0.8):
        fraction, masks = method(env, target)
        env.apply(masks)
        assert cost(model) <= target
        masks_for = env.global_masks if method is budget.global_fraction else (lambda f: env.layer_masks(np.full(3, f)))
        env.apply(masks_for(max(0.0, fraction - 2e-3)))  # a little less pruning misses the budget
        assert cost(model) > target - 0.02
        env.restore()
    with pytest.raises(ValueError, match="cannot be met"):
        method(env, 1e-9, max_fraction=0.5)


class ToyEnv:
    """A synthetic three-layer problem with a known optimum: reward peaks at kept shares
    ``preferred`` (weighted by layer importance), cost is the size-weighted kept share."""

    n_steps = 3
    sizes = np.array([0.1, 0.7, 0.2])

    def __init__(self):
        self.evaluations = 0

    @property
    def n_features(self):
        return 4

    def observation(self, step, previous):
        one_hot = np.eye(3)[step]
        return np.concatenate([[1.0], one_hot])

    def layer_masks(self, fractions):
        return np.asarray(fractions)

    def evaluate(self, fractions):
        self.evaluations += 1
        kept = 1.0 - fractions
        reward = float(-np.sum(np.array([3.0, 0.3, 1.0]) * (1.0 - kept) ** 2))
        return reward, float(self.sizes @ kept)

    def restore(self):
        pass


def test_agent_meets_the_budget_and_prunes_the_cheap_layer_most():
    env = ToyEnv()
    agent = budget.LagrangianPolicyGradient(env.n_features, budget=0.35, seed=0)
    result = budget.search(env, agent, updates=80, episodes_per_update=8, progress=False)
    assert env.evaluations == 80 * 9  # every sampled episode plus the mean action, per update
    best = result["best"]
    assert best is not None and best["cost"] <= 0.35
    kept = 1.0 - np.array(best["fractions"])
    # The large, unimportant middle layer should give up most (what uniform pruning cannot do).
    assert kept[1] < kept[0] and kept[1] < kept[2]
    uniform_reward = env.evaluate(np.full(3, 0.65))[0]  # uniform at cost 0.35
    assert best["reward"] > uniform_reward
    history = result["history"]
    assert history[0]["cost_mean"] > 0.35 and max(h["multiplier"] for h in history) > 0  # nu rose while infeasible


def test_policy_gradient_moves_toward_higher_reward():
    class Bandit(ToyEnv):
        def evaluate(self, fractions):
            return float(np.sum(fractions)), 0.0  # reward grows with pruning, cost always feasible

    env = Bandit()
    agent = budget.LagrangianPolicyGradient(env.n_features, budget=1.0, seed=1)
    start = agent.rollout(env, deterministic=True).fractions
    budget.search(env, agent, updates=20, episodes_per_update=6, progress=False)
    assert np.all(agent.rollout(env, deterministic=True).fractions > start + 0.05)
    assert agent.multiplier == 0.0  # never infeasible, so the multiplier stays at zero


def test_search_resumes_with_identical_numbers(tmp_path):
    full = budget.search(ToyEnv(), budget.LagrangianPolicyGradient(4, 0.35, seed=3), updates=6,
                         episodes_per_update=4, progress=False)
    checkpoint = tmp_path / "agent.json"
    budget.search(ToyEnv(), budget.LagrangianPolicyGradient(4, 0.35, seed=3), updates=3, episodes_per_update=4,
                  checkpoint=checkpoint, progress=False)
    assert len(json.loads(checkpoint.read_text())["history"]) == 3
    resumed = budget.search(ToyEnv(), budget.LagrangianPolicyGradient(4, 0.35, seed=3), updates=6,
                            episodes_per_update=4, checkpoint=checkpoint, progress=False)
    assert resumed["history"] == full["history"] and resumed["best"] == full["best"]


def test_bad_parameters_are_rejected_before_any_work():
    with pytest.raises(ValueError, match="budget must be a finite number > 0"):
        budget.LagrangianPolicyGradient(4, 0.0)
    with pytest.raises(ValueError, match="init_fraction"):
        budget.LagrangianPolicyGradient(4, 0.2, init_fraction=0.99)
    with pytest.raises(ValueError, match="episodes_per_update"):
        budget.search(ToyEnv(), budget.LagrangianPolicyGradient(4, 0.2), updates=3, episodes_per_update=1)
    model = small_cnn()
    with pytest.raises(TypeError, match="callable"):
        budget.LayerwisePruningEnv(model, np.zeros((2, 8, 8, 1)), np.zeros(2), cost=0.5)
    with pytest.raises(ValueError, match="finetune_data"):
        budget.LayerwisePruningEnv(model, np.zeros((2, 8, 8, 1)), np.zeros(2), costs.ParameterFraction(model),
                                   finetune_steps=3)


def test_prune_to_budget_meets_every_budget_on_a_real_network():
    from types import SimpleNamespace

    import keras

    rng = np.random.default_rng(0)
    x = rng.random((600, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int32") + (x[:, 0, 0, 0] > 0.8)
    model = small_cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x[:400], y[:400], epochs=3, verbose=0)
    data = SimpleNamespace(x_train=x[:400], y_train=y[:400], x_val=x[400:500], y_val=y[400:500],
                           x_test=x[500:], y_test=y[500:])
    trained = [w.copy() for w in model.get_weights()]
    result = experiments.prune_to_budget(model, data, costs.ParameterFraction(model), 0.4, eval_size=100, updates=12,
                                    episodes_per_update=4, finetune_epochs=1, episode_finetune_steps=2,
                                    progress=False)
    assert [r["method"] for r in result["rows"]] == ["rl", "uniform", "global"]
    assert all(r["budget_met"] and r["cost"] <= 0.4 for r in result["rows"])
    assert 12 <= len(result["history"]) <= 24  # may go on (up to updates more) until feasible
    for a, b in zip(trained, model.get_weights()):  # the caller's network comes back unchanged
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="validation split"):
        experiments.prune_to_budget(model, data, costs.ParameterFraction(model), 0.4, eval_size=1000)


def test_search_goes_on_until_feasible_when_allowed():
    class FarAway(ToyEnv):
        def evaluate(self, fractions):
            return 0.0, float(self.sizes @ (1.0 - fractions)) + (0.0 if self.evaluations > 40 else 1.0)

        def layer_masks(self, fractions):
            self.evaluations += 1
            return np.asarray(fractions)

    env = FarAway()
    result = budget.search(env, budget.LagrangianPolicyGradient(4, 0.9, seed=0), updates=2, episodes_per_update=3,
                           progress=False, max_extra_updates=50)
    assert result["best"] is not None and len(result["history"]) == 11  # stopped at the first feasible update
    none = budget.search(FarAway(), budget.LagrangianPolicyGradient(4, 0.9, seed=0), updates=2,
                         episodes_per_update=3, progress=False)
    assert none["best"] is None and len(none["history"]) == 2


# ------------------------------------------------------------- per group, on a residual network


def tiny_resnet(seed=0):
    """ResNet-8 at a quarter width (4/8/16 filters, one block per stage) on 12x12 images: the
    ResNet-20 graph (identity and projection shortcuts) in a few thousand parameters, with BN
    statistics made non-trivial so compaction has something to get wrong."""
    model = models.resnet20(width=0.25, blocks=1, seed=seed, input_shape=(12, 12, 3), classes=3)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.5, 2.0, n)])
    return model


def residual_data(n=200, seed=0):
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    x = rng.random((n, 12, 12, 3), dtype=np.float32)
    y = (x[..., 0].mean(axis=(1, 2)) > x[..., 1].mean(axis=(1, 2))).astype("int32") + (x[:, 0, 0, 2] > 0.7)
    a, b = int(0.6 * n), int(0.8 * n)
    return SimpleNamespace(x_train=x[:a], y_train=y[:a], x_val=x[a:b], y_val=y[a:b], x_test=x[b:], y_test=y[b:])


def test_group_environment_prunes_residual_groups_together_and_compacts_exactly():
    model = tiny_resnet()
    data = residual_data(40)
    cost = costs.ParameterFraction(model)
    before = [w.copy() for w in model.get_weights()]
    env = budget.GroupPruningEnv(model, data.x_val, data.y_val, cost)
    graph = pruning.DependencyGraph.of(model)
    assert env.n_steps == len(graph.groups) == 6  # 3 residual streams + one inner conv per block
    streams = [g for g in env.groups if len(g.producers) > 1]
    assert [sorted(g.producers) for g in streams] == [["s1b1_conv2", "stem_conv"], ["s2b1_conv2", "s2b1_proj"],
                                                      ["s3b1_conv2", "s3b1_proj"]]
    assert env.observation(0, []).shape == (env.n_features,)
    fractions = np.array([0.5, 0.25, 0.75, 0.5, 0.5, 0.9])
    masks = env.layer_masks(fractions)
    expected_kept = [1 - int(g.size * f) / g.size for g, f in zip(env.groups, fractions)]
    assert env.kept_fractions(masks) == pytest.approx(expected_kept)
    env.apply(masks)
    # a residual stream loses the same channels in every producer (and in every reader)
    stream = streams[1]
    pruned_out = [~model.get_layer(p).kernel.numpy().any(axis=(0, 1, 2)) for p in stream.producers]
    position = next(i for i, g in enumerate(env.groups) if g is stream)
    assert all(np.array_equal(pruned_out[0], other) for other in pruned_out[1:])
    assert pruned_out[0].sum() == int(stream.size * fractions[position])
    small, report = pruning.compact(model)  # raises unless the outputs are the same
    np.testing.assert_allclose(small.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0),
                               atol=1e-5)
    assert cost(small) == pytest.approx(cost(model)) and cost(model) < 0.5
    assert small.count_params() < model.count_params()
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy().any(axis=(0, 1, 2)),
                                  model.get_layer("s1b1_conv2").kernel.numpy().any(axis=(0, 1, 2)))
    # uniform and global bisection on groups, and a FLOPs budget
    flop_cost = costs.FlopFraction(model)
    env.restore()
    for target, c in ((0.5, cost), (0.3, flop_cost)):
        env.cost = c
        for method in (budget.uniform_fraction, budget.global_fraction):
            _, found = method(env, target)
            env.apply(found)
            assert c(model) <= target
            assert c(pruning.compact(model)[0]) == pytest.approx(c(model))
            env.restore()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_any_importance_of_the_registry_plugs_in():
    model = small_cnn()
    rng = np.random.default_rng(0)
    random_scores = {layer.name: rng.random(tuple(layer.kernel.shape))
                     for layer in model.layers if hasattr(layer, "kernel")}
    env = budget.LayerwisePruningEnv(model, np.zeros((4, 8, 8, 1)), np.zeros(4), costs.ParameterFraction(model),
                                     importance=lambda layer, granularity: random_scores[layer.name])
    for mask, layer in zip(env.layer_masks(np.array([0.5, 0.5, 0.5])), env.layers):
        scores = random_scores[layer.name]
        assert scores[~mask].max() <= scores[mask].min()  # the lowest scores go, not the smallest |w|
    x, y = np.random.default_rng(1).random((8, 8, 8, 1), dtype=np.float32), np.arange(8) % 3
    taylor = budget.LayerwisePruningEnv(model, x, y, costs.ParameterFraction(model), importance="taylor",
                                        importance_data=(x, y))
    reference = pruning.masks_for(model, 0.3, importance="taylor", data=(x, y), scope="global",
                                  layers=["conv", "hidden", "out"])
    for layer, mask in zip(taylor.layers, taylor.global_masks(0.3)):
        np.testing.assert_array_equal(mask, reference[layer.kernel.path])
    resnet = tiny_resnet()
    data = residual_data(40)
    for importance in ("l1", "bn_scale", lambda layer, granularity: np.arange(layer.kernel.shape[-1], dtype=float)):
        env = budget.GroupPruningEnv(resnet, data.x_val, data.y_val, costs.FlopFraction(resnet), importance=importance)
        fractions = np.full(env.n_steps, 0.5)
        expected = pruning.masks_for(resnet, list(fractions), granularity="filter", importance=importance)
        got = env.layer_masks(fractions)
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


@pytest.mark.parametrize("kind, target, steps, epochs", [("parameters", 0.5, 1, 1), ("flops", 0.5, 0, 0)])
def test_prune_to_budget_by_filters_compacts_every_result(kind, target, steps, epochs):
    """RL (2 updates of 2 episodes), uniform and global on the tiny ResNet, untrained (accuracy
    does not matter here; every Keras train step traced costs seconds): with in-episode recovery
    and the equal fine-tune for a parameter budget, one-shot for a FLOPs budget."""
    model = tiny_resnet()
    data = residual_data(200)
    trained = [w.copy() for w in model.get_weights()]
    result = experiments.prune_to_budget(model, data, costs.make_cost(kind, model), target, eval_size=40, updates=2,
                                         episodes_per_update=2, finetune_epochs=epochs, finetune_batch=32,
                                         episode_finetune_steps=steps, progress=False, granularity="filter",
                                         agent_kwargs={"init_fraction": 0.5})
    assert result["granularity"] == "filter" and len(result["layers"]) == 6
    assert [r["method"] for r in result["rows"]] == ["rl", "uniform", "global"]
    for row in result["rows"]:
        assert row["budget_met"] and row["cost"] <= target and row["compact_cost"] <= target
        assert row["compact_cost"] == pytest.approx(row["cost_after_finetune"])
        assert row["compact_test_acc"] == pytest.approx(row["test_acc_after_finetune"])
        assert row["compact_parameters"] < result["dense_parameters"] and row["compact_flops"] < row["dense_flops"]
        assert len(row["kept_per_layer"]) == 6 and row["compact_seconds"] > 0 and row["search_seconds"] > 0
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_budget_study_keys_name_the_granularity_only_where_it_is_not_the_default(monkeypatch):
    """Notebook 08's cached results keep their keys; the ResNet's name its filter granularity."""
    seen = {}
    monkeypatch.setattr(experiments.study, "cached", lambda name, config, compute, **kwargs: (seen.update(
        {config["model"]: config}), True))
    pretrain = dict(epochs=1, batch_size=32, learning_rate=1e-3, train_subset=None)
    search = {"lenet5": (2, 1), "resnet20": (2, 1)}
    study = experiments.BudgetPruning({"lenet5": pretrain, "resnet20": pretrain}, search, ["rl", "uniform"])
    for name in ("lenet5", "resnet20"):
        study.run(name, "parameters", 0.25)
    assert set(seen["lenet5"]) == {"model", "kind", "budget", "methods", "pretrain", "validation_size",
                                   "eval_size", "updates", "episodes_per_update", "episode_finetune_steps",
                                   "finetune_epochs", "seed"}
    assert seen["resnet20"]["granularity"] == "filter" and "importance" not in seen["resnet20"]
    assert "bn_recalibration" not in seen["resnet20"]
    # BN recalibration is named in the key of the model it is asked for, and only there
    study = experiments.BudgetPruning({"lenet5": pretrain, "resnet20": pretrain}, search, ["rl", "uniform"],
                                      bn_recalibration={"resnet20": 512})
    assert study.config("resnet20", "parameters", 0.25)["bn_recalibration"] == 512
    assert study.config("lenet5", "parameters", 0.25) == seen["lenet5"]
    with pytest.raises(ValueError, match="bn_recalibration"):
        experiments.BudgetPruning({"lenet5": pretrain}, {"lenet5": (2, 1)}, ["rl"], bn_recalibration={"alexnet": 1})
    with pytest.raises(ValueError, match="importance"):
        experiments.BudgetPruning({"lenet5": pretrain}, {"lenet5": (2, 1)}, ["rl"], importance="taylor")
    # A criterion registered after the study module was imported is a valid importance, and named in the key.
    from helpers.pruning import criteria

    criteria.register_importance("test_budget_linf")(criteria.L1Norm)
    try:
        study = experiments.BudgetPruning({"lenet5": pretrain}, {"lenet5": (2, 1)}, ["rl"], importance="test_budget_linf")
        assert study.config("lenet5", "parameters", 0.25)["importance"] == "test_budget_linf"
    finally:
        criteria.unregister_importance("test_budget_linf")


def test_the_study_allows_the_budgets_the_notebook_spec_allows():
    """One rule for a fraction budget, (0, 1] (``validation.Budget``), in the notebook's spec and the study."""
    from helpers.notebooks.manifest import NOTEBOOKS

    spec = NOTEBOOKS["08_budget_constrained_pruning"].parameters["budgets"]
    study = experiments.BudgetPruning({"lenet5": dict(epochs=1, batch_size=32, learning_rate=1e-3, train_subset=None)},
                                      {"lenet5": (2, 1)}, ["rl"])
    for value in (1e-3, 0.5, 1.0):
        spec("budgets", [["parameters", value]])
        study.check_budget("parameters", value)
    for kind, value in (("parameters", 0.0), ("flops", 1.5), ("parameters", -0.1), ("latency", 0.5)):
        with pytest.raises(ValueError):
            spec("budgets", [[kind, value]])
        with pytest.raises(ValueError):
            study.check_budget(kind, value)


def test_a_diverged_fine_tune_is_a_failure_and_leaves_no_mask_attached(monkeypatch):
    """The equal fine-tune runs under NonFiniteGuard: a NaN loss raises RunFailedError (never a
    row), and retrain_with_masks detaches its masks even then."""
    import helpers.callbacks
    from helpers.pruning.itp import PruningConstraint

    model = tiny_resnet()
    data = residual_data(200)
    monkeypatch.setattr(helpers.callbacks, "non_finite_reason", lambda model, logs: "loss is nan (forced)")
    with pytest.raises(experiments.budget.RunFailedError, match="nan"):
        experiments.prune_to_budget(model, data, costs.make_cost("parameters", model), 0.9, methods=["uniform"],
                                    eval_size=40, finetune_epochs=1, finetune_batch=32, progress=False,
                                    granularity="filter")
    assert not any(isinstance(getattr(v, "constraint", None), PruningConstraint) and v.constraint.mask is not None
                   for v in model.weights)


def test_tables_over_seeds_agree_with_a_brute_force_count():
    """budget_summary and budget_verdict over random per-seed results: means, sample stds and the
    wins / loses / mixed outcome recomputed by hand for every (model, budget, baseline, stage)."""
    rng = np.random.default_rng(5)
    results = {}
    for model_name in ("lenet5", "resnet20"):
        for kind, value in (("parameters", 0.25), ("flops", 0.5)):
            for seed in (0, 1, 2):
                results[model_name, kind, value, seed] = {"rows": [
                    {"method": m, "cost": value * rng.random(), "budget_met": True,
                     "test_acc_before_finetune": rng.random(), "test_acc_after_finetune": rng.random()}
                    for m in ("rl", "uniform", "global")]}
    table = experiments.budget_table(results)
    summary = experiments.budget_summary(table).set_index(["model", "budget_kind", "budget", "method"])
    verdict = experiments.budget_verdict(table).set_index(["model", "budget", "vs", "stage"])
    assert len(table) == 2 * 2 * 3 * 3 and len(summary) == 2 * 2 * 3 and len(verdict) == 2 * 2 * 2 * 2
    for (model_name, kind, value, _), _result in results.items():
        acc = {m: {s: {stage: row[f"test_acc_{stage}_finetune"] for stage in ("before", "after")}
                   for (mm, k, v, s), r in results.items() if (mm, k, v) == (model_name, kind, value)
                   for row in r["rows"] if row["method"] == m} for m in ("rl", "uniform", "global")}
        for m in acc:
            after = [acc[m][s]["after"] for s in (0, 1, 2)]
            got = summary.loc[(model_name, kind, value, m)]
            assert got.seeds == 3 and got.after_mean == pytest.approx(np.mean(after))
            assert got.after_std == pytest.approx(np.std(after, ddof=1))
        for baseline in ("uniform", "global"):
            for stage in ("before", "after"):
                diff = [100 * (acc["rl"][s][stage] - acc[baseline][s][stage]) for s in (0, 1, 2)]
                row = verdict.loc[(model_name, f"{kind} <= {value}", baseline, stage)]
                assert row.rl_minus_baseline_pp == pytest.approx(np.mean(diff))
                assert row.std_pp == pytest.approx(np.std(diff, ddof=1))
                expected = "wins" if min(diff) > 0 else "loses" if max(diff) < 0 else "mixed"
                assert row.outcome == expected


def test_the_budget_studys_rl_search_checkpoints_in_partial_until_its_result_is_cached(monkeypatch, tmp_path):
    """A result's RL search writes its state to partial/ under the result's key (so a search longer
    than a session resumes there); once the result is cached the checkpoint is removed."""
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    pretrain = dict(epochs=1, batch_size=32, learning_rate=1e-3, train_subset=None)
    study = experiments.BudgetPruning({"lenet5": pretrain}, {"lenet5": (2, 1)}, ["rl"])
    seen = []

    def fake_prune(model, data, cost, budget, checkpoint=None, **kwargs):
        seen.append(checkpoint)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text("{}")  # what search would have written after an update
        return {"rows": [], "history": [], "layers": []}

    monkeypatch.setattr(experiments.budget, "prune_to_budget", fake_prune)
    study._trained["lenet5"] = (keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),  # no pre-training
                                SimpleNamespace(x_test=np.zeros((1, 2)), y_test=np.zeros(1), label="toy"))
    monkeypatch.setattr(experiments.budget, "make_cost", lambda kind, model: (lambda m: 1.0))
    monkeypatch.setattr(experiments.budget, "pretraining_history", lambda name: None)
    result, hit = study.run("lenet5", "parameters", 0.5)
    (checkpoint,) = seen
    assert not hit and checkpoint.parent.name == "partial"
    assert checkpoint.name == f"budget_pruning-{study.key(model='lenet5', kind='parameters', budget=0.5)}.json"
    assert not checkpoint.exists()  # the result is cached: its search's state is gone
    assert study.run("lenet5", "parameters", 0.5) == (result, True) and len(seen) == 1

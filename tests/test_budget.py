"""Budget-constrained pruning: cost functions against brute force, the environment's masks,
the baselines' bisection, the Lagrangian agent on synthetic problems, and resume."""

import json

import numpy as np
import pytest

from helpers import budget, experiments, models, pruning
from helpers.pruning import costs


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


@pytest.mark.parametrize("method", [experiments.uniform_fraction, experiments.global_fraction])
def test_baselines_find_the_least_pruning_that_meets_the_budget(method):
    model = small_cnn()
    cost = costs.ParameterFraction(model)
    env = budget.LayerwisePruningEnv(model, np.zeros((4, 8, 8, 1)), np.zeros(4), cost)
    for target in (0.1, 0.35, 0.8):
        fraction, masks = method(env, target)
        env.apply(masks)
        assert cost(model) <= target
        masks_for = env.global_masks if method is experiments.global_fraction else (lambda f: env.layer_masks(np.full(3, f)))
        env.apply(masks_for(max(0.0, fraction - 2e-3)))  # a little less pruning misses the budget
        assert cost(model) > target - 0.02
        env.restore()
    with pytest.raises(ValueError, match="cannot be met"):
        method(env, 1e-9, max_fraction=0.5)


class ToyEnv:
    """A synthetic three-layer problem with a known optimum: reward peaks at kept shares
    ``preferred`` (weighted by layer importance), cost is the size-weighted kept share."""

    n_layers = 3
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

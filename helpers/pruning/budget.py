"""Pruning to a computational budget with constrained reinforcement learning (project 004).

The problem: choose a pruning fraction for every prunable unit (a layer's weights, or a
dependency-graph group's channels) so that a *black-box* cost of the pruned network stays within
a budget, losing as little accuracy as possible. The cost is only ever evaluated, never
differentiated, so it can be anything computed from a model: the fraction of parameters kept,
FLOPs (``costs.ParameterFraction``, ``costs.FlopFraction``, ``costs.make_cost``), a measured
latency, a user's own callable ``model -> float``. Which weights or channels go first is any
importance of the registry (``criteria``: ``"magnitude"``, ``"l1"``, ``"l2"``, ``"taylor"``,
``"bn_scale"`` for channels, or a callable ``importance(layer, granularity)``).

The environments (one step per decision, the same interface, so the agent, the search and the
baselines work with either):

- ``LayerwisePruningEnv``: the environment of project 004's code. One step per prunable layer
  (Dense/Conv2D, output included), the action is that layer's pruning fraction of single
  weights, the observation describes the layer and what was pruned so far;
- ``GroupPruningEnv``: one step per group of the dependency graph (``DependencyGraph.groups``:
  a layer's filters, or a residual stage's channels shared by every block that adds to it), the
  action is the fraction of that group's channels to remove, the masks are the structured masks
  of ``criteria`` (every member's slices), so the masked network is exactly its compaction
  (``compaction.compact``).

At the end of an episode the network is pruned by those fractions, the reward is the accuracy on
a held-out evaluation batch (optionally after a short masked recovery) and the cost is the budget
function.

- ``LagrangianPolicyGradient``: a Gaussian policy, linear in the observation, trained by
  REINFORCE on the Lagrangian ``reward - nu * cost`` with the multiplier ``nu >= 0`` learned by
  projected dual ascent on ``nu * (mean cost / budget - 1)``. This is the simpler Lagrangian
  policy gradient used in place of PPO-Lagrangian (REPRODUCTION_NOTES.md §12); the combination
  ``(A_reward - nu * A_cost) / (1 + nu)`` is the one of project 004's PPO-Lagrangian (which learns
  ``nu = softplus(log nu)`` instead: its gradient vanishes as nu -> 0, so it recovers slowly);
- ``search``: the training loop, seeded, checkpointed after every update (bit-exact resume) and
  returning the best *feasible* pruning seen (a Lagrangian policy only meets the constraint on
  average, so the answer is chosen among episodes that met it);
- the baselines at the same budget, each the least pruning that meets it (bisection on the cost,
  ``least_pruning_meeting_budget``): ``uniform_fraction`` (project 004's: the same fraction in every
  layer or group) and ``global_fraction`` (one ranking across all of them).

The masked retrain after the search is ``masks.retrain_with_masks``; the experiment of notebook 08
(``prune_to_budget``, ``BudgetPruning``, the tables) is in ``helpers.experiments.budget``.

Everything here is numpy plus the model's own ``predict``: backend-agnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..files import read_json, write_json
from ..layers import weights as weight_table
from ..progress import trange
from ..validation import Float, check_float, check_int
from . import criteria
from .masks import apply_masks, attach_masks, detach_masks, recalibrate_batch_norm
from .selection import prunable_layers

# --------------------------------------------------------------------------- environments


class _PruningEnv:
    """What both environments share: the reward batch, the cost, the trained weights, the
    optional in-episode recovery and the evaluation of one episode's masks."""

    def _setup(self, model, x_eval, y_eval, cost, max_fraction, batch_size, finetune_data, finetune_steps,
               finetune_batch, finetune_lr, recalibration_data):
        max_fraction = Float(0.0, 1.0, min_open=True)("max_fraction", max_fraction)
        if len(x_eval) != len(y_eval) or len(x_eval) == 0:
            raise ValueError("x_eval and y_eval must be non-empty and of equal length")
        if not callable(cost):
            raise TypeError("cost must be a callable model -> float")
        check_int("batch_size", batch_size, minimum=1)
        finetune_steps = check_int("finetune_steps", finetune_steps, minimum=0)
        check_int("finetune_batch", finetune_batch, minimum=1)
        check_float("finetune_lr", finetune_lr, minimum=0.0, min_open=True)
        self.model, self.cost, self.max_fraction, self.batch_size = model, cost, max_fraction, batch_size
        self.x_eval, self.y_eval = x_eval, np.asarray(y_eval).reshape(-1)
        self.finetune_steps = int(finetune_steps)
        if self.finetune_steps:
            if finetune_data is None:
                raise ValueError("finetune_steps > 0 needs finetune_data=(x, y)")
            n = self.finetune_steps * finetune_batch
            self._finetune = (finetune_data[0][:n], np.asarray(finetune_data[1])[:n], finetune_batch, finetune_lr)
        if recalibration_data is not None and len(recalibration_data) == 0:
            raise ValueError("recalibration_data must be None or a non-empty array of inputs")
        self.recalibration_data = recalibration_data

    @property
    def n_steps(self):
        """Decisions per episode (layers or groups)."""
        return len(self.sizes)

    @property
    def n_features(self):
        return self._features.shape[1] + 3

    def observation(self, step, previous):
        """Features of decision ``step`` given the fractions already chosen for the ones before."""
        previous = np.asarray(previous, dtype=np.float64)
        removed = float(previous @ self.sizes[:step]) / self.sizes.sum() if step else 0.0
        mean_previous = float(previous.mean()) if step else 0.0
        return np.concatenate([self._features[step], [removed, mean_previous, step / self.n_steps]])

    def restore(self):
        detach_masks(self.model)
        self.model.set_weights(self._trained)

    def _recover(self, masks):
        """The short in-episode fine-tune: plain SGD (stateless, so episodes do not leak
        optimizer state into each other) from the trained weights, masks held in-graph."""
        x, y, batch, lr = self._finetune
        self.model.set_weights(self._trained)
        attach_masks(self.model, self.masks_as_paths(masks))
        if getattr(self, "_recovery_optimizer", None) is None:
            self._recovery_optimizer = keras.optimizers.SGD(lr)
        if getattr(self.model, "optimizer", None) is not self._recovery_optimizer:  # an uncompiled model has none
            self.model.compile(optimizer=self._recovery_optimizer, loss="sparse_categorical_crossentropy")
        self.model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

    def accuracy(self, x=None, y=None):
        x = self.x_eval if x is None else x
        y = self.y_eval if y is None else np.asarray(y).reshape(-1)
        predictions = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        return float(np.mean(np.argmax(predictions, axis=-1) == y))

    def recalibrate(self):
        """Re-estimate the pruned network's BN statistics on ``recalibration_data`` (nothing
        when it is None): ``masks.recalibrate_batch_norm``."""
        if self.recalibration_data is not None:
            recalibrate_batch_norm(self.model, self.recalibration_data)

    def evaluate(self, masks):
        """(reward, cost) of the model pruned by ``masks`` (after the recovery steps and the BN
        recalibration, where asked); the model stays pruned."""
        if self.finetune_steps:
            self._recover(masks)
        else:
            self.apply(masks)
        self.recalibrate()
        return self.accuracy(), float(self.cost(self.model))


class LayerwisePruningEnv(_PruningEnv):
    """Prune ``model``'s weights layer by layer with the fractions an agent picks.

    With ``finetune_steps`` every episode first retrains the pruned network for that many SGD
    steps (masks kept, always on the same first images of ``finetune_data``, so the reward stays
    a deterministic function of the fractions), as project 004's environment optionally does: the
    accuracy of a one-shot pruned network is flat near chance over much of the action space, the
    accuracy after a short recovery is not. With ``recalibration_data`` (inputs, e.g. a few
    hundred training images) the BN statistics are then re-estimated on the pruned network
    (``recalibrate``): a network with BN layers pruned by channels is evaluated with the
    statistics of its own activations, not the dense network's.

    Args:
        model: a trained Keras model; its weights are restored by ``restore()``.
        x_eval, y_eval: the held-out evaluation batch that defines the reward (accuracy).
        cost: callable ``model -> float`` evaluated on the pruned model.
        layers: names of the layers to prune (default: every Dense/Conv2D, output included).
        max_fraction: the largest fraction an action may prune from one layer.
        importance: which weights of a layer go first: a name of ``criteria.IMPORTANCES`` or a
            callable ``importance(layer, "weight")`` (kernel-shaped scores), ranked once on the
            trained weights; ``importance_data=(x, y)`` is the batch of ``"taylor"``.
    """

    def __init__(self, model, x_eval, y_eval, cost, layers=None, max_fraction=0.98, batch_size=1000,
                 finetune_data=None, finetune_steps=0, finetune_batch=64, finetune_lr=0.01, importance="magnitude",
                 importance_data=None, recalibration_data=None):
        self._setup(model, x_eval, y_eval, cost, max_fraction, batch_size, finetune_data, finetune_steps,
                    finetune_batch, finetune_lr, recalibration_data)
        self.layers = prunable_layers(model, layers, include_output=True)
        self.kernels = [layer.kernel.numpy().copy() for layer in self.layers]
        # |w| for magnitude, l1 and l2 (the kernels themselves: keep_masks takes |.|), else scored once.
        self.importance = importance
        self._scores = (self.kernels if isinstance(importance, str) and importance in ("magnitude", "l1", "l2")
                        else criteria.kernel_scores(model, self.layers, importance, data=importance_data))
        # Sorting once makes every episode's masks a slice of a precomputed order.
        self._order = [criteria.rank(s) for s in self._scores]
        self.sizes = np.array([k.size for k in self.kernels], dtype=np.float64)
        self._features = self._static_features()
        self._trained = model.get_weights()

    @property
    def n_layers(self):
        return len(self.layers)

    @property
    def names(self):
        return [layer.name for layer in self.layers]

    def _static_features(self):
        """Per-layer description, as in project 004's environment: index, in/out channels, kernel
        size, stride, plus size shares; and a one-hot layer index so that a linear policy can
        represent any per-layer allocation."""
        rows = []
        total = self.sizes.sum()
        for i, (layer, kernel) in enumerate(zip(self.layers, self.kernels)):
            conv = len(kernel.shape) == 4
            kernel_size = kernel.shape[0] if conv else 1
            stride = layer.strides[0] if conv else 1
            rows.append([1.0, i / max(1, self.n_layers - 1), float(conv), math.log(kernel.shape[-2]) / 10,
                         math.log(kernel.shape[-1]) / 10, kernel_size / 5, stride / 2,
                         self.sizes[i] / total, self.sizes[i + 1:].sum() / total])
        return np.hstack([np.array(rows), np.eye(self.n_layers)])

    # masks and evaluation -------------------------------------------------------------

    def layer_masks(self, fractions):
        """Keep-masks per layer: drop the ``int(size * f)`` least important weights of each kernel."""
        return criteria.keep_masks(self.kernels, fractions, orders=self._order)

    def global_masks(self, fraction):
        """One ranking across all the environment's kernels."""
        return criteria.keep_masks(self._scores, fraction, scope="global")

    def apply(self, masks):
        for layer, kernel, mask in zip(self.layers, self.kernels, masks):
            layer.kernel.assign(np.where(mask, kernel, 0.0).astype(kernel.dtype))

    def masks_as_paths(self, masks):
        """The masks in ``helpers.pruning`` form (variable path -> keep-mask)."""
        return {layer.kernel.path: mask for layer, mask in zip(self.layers, masks)}

    def kept_fractions(self, masks):
        return [float(m.mean()) for m in masks]


class GroupMasks(dict):
    """Structured masks ``{weight key: keep-mask}`` (a plain dict for ``attach_masks``) that also
    know, per group of the environment, the share of its channels kept (``kept``)."""

    def __init__(self, masks, kept):
        super().__init__(masks)
        self.kept = list(kept)


class GroupPruningEnv(_PruningEnv):
    """Prune ``model``'s channels group by group (``DependencyGraph.of(model).groups``) with the
    fractions an agent picks.

    A group is pruned as one unit: a residual stage's channels leave every conv that produces
    them, every reader and BN at once, so the structured masks zero exactly what ``compact``
    removes and the cost of a masked episode is the cost of its compacted network. Channels are
    ranked once, on the trained weights, by ``importance`` (any of ``criteria``'s for filters:
    ``"magnitude"``, ``"l1"``, ``"l2"``, ``"taylor"`` with ``importance_data=(x, y)``,
    ``"bn_scale"``, or a callable ``importance(layer, "filter")``), with ``members`` as in
    ``criteria.masks_for``; every group keeps at least one channel. ``ignored_layers`` (names)
    leaves the groups of those producers whole; ``global_normalize="fan_in"`` is the
    ``normalize`` of the global baseline's ranking. The other arguments are those of
    ``LayerwisePruningEnv``.
    """

    def __init__(self, model, x_eval, y_eval, cost, max_fraction=0.98, batch_size=1000, finetune_data=None,
                 finetune_steps=0, finetune_batch=64, finetune_lr=0.01, importance="magnitude", importance_data=None,
                 members="all", ignored_layers=None, global_normalize=None, recalibration_data=None):
        self._setup(model, x_eval, y_eval, cost, max_fraction, batch_size, finetune_data, finetune_steps,
                    finetune_batch, finetune_lr, recalibration_data)
        self.importance, self.members, self.global_normalize = importance, members, global_normalize
        self.graph, self.groups, self._scores = criteria.group_scores(
            model, importance, members=members, ignored_layers=ignored_layers, data=importance_data)
        if not self.groups:
            raise ValueError(f"{model.name} has no prunable channel group (DependencyGraph.blocked: "
                             f"{self.graph.blocked or 'none'})")
        if global_normalize is not None:
            _, _, self._global_scores = criteria.group_scores(model, importance, members=members,
                                                              ignored_layers=ignored_layers, data=importance_data,
                                                              normalize=global_normalize)
        else:
            self._global_scores = self._scores
        self._trained = model.get_weights()
        table = weight_table(model)
        self.sizes = np.array([self._removed_weights(group, table) for group in self.groups], dtype=np.float64)
        self._features = self._static_features()

    @property
    def names(self):
        return [group.name for group in self.groups]

    def _removed_weights(self, group, table):
        """Kernel weights that removing every channel of ``group`` zeroes (its share of the network)."""
        masks = self.graph.masks(group.channels, members=self.members, groups=[group])
        return sum(int((~mask).sum()) for key, mask in masks.items() if table[key].is_kernel)

    def _static_features(self):
        """Per-group description: index, channels, producers (several for a residual stage),
        size shares; and a one-hot group index (any per-group allocation is linear in it)."""
        rows = []
        total = self.sizes.sum()
        for i, group in enumerate(self.groups):
            rows.append([1.0, i / max(1, self.n_steps - 1), math.log(group.size) / 10, len(group.producers) / 4,
                         float(len(group.producers) > 1), self.sizes[i] / total, self.sizes[i + 1:].sum() / total])
        return np.hstack([np.array(rows), np.eye(self.n_steps)])

    # masks and evaluation -------------------------------------------------------------

    def _masks(self, scores, amount, scope, max_ratio=None):
        masks, chosen = criteria.group_masks(self.graph, self.groups, scores, amount, scope=scope,
                                             members=self.members, max_ratio=max_ratio)
        return GroupMasks(masks, [1.0 - len(c) / g.size for c, g in zip(chosen, self.groups)])

    def layer_masks(self, fractions):
        """Structured masks removing ``int(size * f)`` of each group's least important channels
        (one fraction per group; at least one channel of each is kept)."""
        return self._masks(self._scores, list(np.asarray(fractions, dtype=np.float64)), "layer")

    group_masks = layer_masks

    def global_masks(self, fraction):
        """One ranking of all channels across groups (``criteria``'s global filter pruning: no
        group loses more than 90% of its channels)."""
        return self._masks(self._global_scores, fraction, "global")

    def apply(self, masks):
        self.model.set_weights(self._trained)
        apply_masks(self.model, masks)

    def masks_as_paths(self, masks):
        return dict(masks)

    def kept_fractions(self, masks):
        return list(masks.kept)


# --------------------------------------------------------------------------- agent


def _standardize(values):
    """Batch-centred advantages in units of the batch's spread (0 where all are equal)."""
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-12 else np.zeros_like(values)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class _Adam:
    """Adam ascent on a flat parameter vector (numpy, so the agent is backend-agnostic)."""

    learning_rate: float
    m: np.ndarray
    v: np.ndarray
    t: int = 0

    def step(self, params, gradient, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t += 1
        self.m = beta1 * self.m + (1 - beta1) * gradient
        self.v = beta2 * self.v + (1 - beta2) * gradient ** 2
        m_hat = self.m / (1 - beta1 ** self.t)
        v_hat = self.v / (1 - beta2 ** self.t)
        return params + self.learning_rate * m_hat / (np.sqrt(v_hat) + eps)


@dataclass
class Episode:
    features: np.ndarray  # (steps, features)
    latent: np.ndarray  # sampled pre-squash actions u
    fractions: np.ndarray  # max_fraction * sigmoid(u)
    reward: float = float("nan")
    cost: float = float("nan")


@dataclass
class LagrangianPolicyGradient:
    """Gaussian policy u ~ N(theta . phi(s), sigma^2), action = max_fraction * sigmoid(u), trained
    on the Lagrangian of (reward, cost <= budget) with a learned multiplier.

    Advantages are standardised per batch (the batch mean is the baseline, the batch spread
    the unit) for reward and for cost separately and combined as ``(A_r - nu * A_c) / (1 + nu)``,
    so ``nu`` means the same for every reward scale and budget. ``nu`` rises while the batch's
    mean cost exceeds the budget and falls (not below 0) otherwise.
    """

    n_features: int
    budget: float
    max_fraction: float = 0.98
    init_fraction: float = 0.5
    init_std: float = 0.5
    learning_rate: float = 0.03
    multiplier_kp: float = 1.0
    multiplier_ki: float = 0.1
    min_std: float = 0.05
    seed: int = 0
    theta: np.ndarray = field(init=False)
    log_std: float = field(init=False)
    nu: float = field(init=False)
    integral: float = field(init=False)

    def __post_init__(self):
        check_int("n_features", self.n_features, minimum=1)
        self.budget = check_float("budget", self.budget, minimum=0.0, min_open=True)
        for name in ("max_fraction", "init_fraction", "init_std", "learning_rate", "multiplier_kp", "multiplier_ki",
                     "min_std"):
            setattr(self, name, check_float(name, getattr(self, name)))
        check_int("seed", self.seed, minimum=0)
        if not 0.0 < self.init_fraction < self.max_fraction:
            raise ValueError(f"init_fraction must be in (0, max_fraction={self.max_fraction}), got {self.init_fraction}")
        if self.init_std <= 0 or self.multiplier_kp < 0 or self.multiplier_ki < 0:
            raise ValueError("init_std must be positive, multiplier_kp and multiplier_ki non-negative")
        self.theta = np.zeros(self.n_features)
        p = self.init_fraction / self.max_fraction
        self.theta[0] = math.log(p / (1 - p))  # feature 0 is the constant 1: start at init_fraction
        self.log_std = math.log(self.init_std)
        self.nu, self.integral = 0.0, 0.0
        self._adam = _Adam(self.learning_rate, np.zeros(self.n_features + 1), np.zeros(self.n_features + 1))
        self.rng = np.random.default_rng(self.seed)

    @property
    def multiplier(self):
        return self.nu

    @property
    def std(self):
        return math.exp(self.log_std)

    def act(self, features, deterministic=False):
        """One action (pre-squash latent u, fraction) for one observation."""
        mean = float(self.theta @ features)
        u = mean if deterministic else mean + self.std * float(self.rng.standard_normal())
        return u, self.max_fraction * float(_sigmoid(u))

    def rollout(self, env, deterministic=False):
        """Choose a fraction for every decision of ``env`` in order; the episode is not yet scored."""
        features, latent, fractions = [], [], []
        for step in range(env.n_steps):
            phi = env.observation(step, fractions)
            u, f = self.act(phi, deterministic)
            features.append(phi)
            latent.append(u)
            fractions.append(f)
        return Episode(np.array(features), np.array(latent), np.array(fractions))

    def update(self, episodes):
        """One policy-gradient step on a batch of scored episodes and one multiplier step."""
        rewards = np.array([e.reward for e in episodes])
        costs_ = np.array([e.cost for e in episodes]) / self.budget
        nu = self.multiplier
        advantage = _standardize((rewards - rewards.mean()) - nu * (costs_ - costs_.mean()))
        sigma2 = self.std ** 2
        grad_theta = np.zeros_like(self.theta)
        grad_log_std = 0.0
        for a, e in zip(advantage, episodes):
            delta = e.latent - e.features @ self.theta
            grad_theta += a * (delta / sigma2) @ e.features
            grad_log_std += a * float(np.sum(delta ** 2 / sigma2 - 1.0))
        params = np.concatenate([self.theta, [self.log_std]])
        gradient = np.concatenate([grad_theta, [grad_log_std]]) / len(episodes)
        params = self._adam.step(params, gradient)
        self.theta = params[:-1]
        self.log_std = float(np.clip(params[-1], math.log(self.min_std), math.log(2.0)))
        # PI-controlled multiplier (Stooke et al. 2020): the integral term is dual ascent on
        # nu * (mean cost / budget - 1); the proportional term makes nu fall as soon as the cost
        # is back within budget, which stops the overshoot of a pure integrator.
        # The error is log(mean cost / budget): symmetric, so a start far above the budget does
        # not wind the integral up more than a dip below it can unwind.
        error = float(np.log(max(costs_.mean(), 1e-12)))
        self.integral = max(0.0, self.integral + error)
        self.nu = max(0.0, self.multiplier_kp * error + self.multiplier_ki * self.integral)
        return {"multiplier": nu, "std": self.std}

    # checkpointing ---------------------------------------------------------------------

    def state(self):
        return {"theta": self.theta.tolist(), "log_std": self.log_std, "nu": self.nu, "integral": self.integral,
                "adam": {"m": self._adam.m.tolist(), "v": self._adam.v.tolist(), "t": self._adam.t},
                "rng": self.rng.bit_generator.state}

    def load_state(self, state):
        self.theta = np.array(state["theta"])
        self.log_std, self.nu, self.integral = (float(state["log_std"]), float(state["nu"]),
                                               float(state["integral"]))
        self._adam.m, self._adam.v = np.array(state["adam"]["m"]), np.array(state["adam"]["v"])
        self._adam.t = int(state["adam"]["t"])
        self.rng.bit_generator.state = state["rng"]


def initial_fraction(budget, granularity="weight"):
    """The policy's first fraction (``LagrangianPolicyGradient(init_fraction=...)``) for a budget
    on a fraction cost (parameters, FLOPs): uniform pruning at about twice the budget (infeasible but
    near the boundary, so the multiplier does not wind up over a long approach). Keeping ``1 - f``
    of every layer's weights costs about ``1 - f``; of every group's channels about ``(1 - f)^2``
    (a conv loses input and output channels), aimed at ``min(2 b, (1 + b) / 2)``, which stays
    below the dense network's cost for large budgets. 0.5 for weight budgets the formula does not
    fit."""
    if granularity not in ("weight", "filter"):
        raise ValueError(f"granularity must be 'weight' or 'filter', got {granularity!r}")
    budget = check_float("budget", budget, minimum=0.0, min_open=True)
    if granularity == "filter":
        return min(max(1.0 - math.sqrt(min(2.0 * budget, 0.5 * (1.0 + budget))), 0.05), 0.9)
    return min(max(1.0 - 2.0 * budget, 0.05), 0.9) if budget < 0.5 else 0.5


# --------------------------------------------------------------------------- the search


def search(env, agent, updates=40, episodes_per_update=8, checkpoint=None, progress=True, max_extra_updates=0):
    """Train ``agent`` on ``env`` and return the best feasible pruning found.

    Each update scores ``episodes_per_update`` sampled episodes plus the policy's mean action
    (deterministic rollout). The answer is the highest-reward episode whose cost met the budget;
    the history has one row per update. If no episode has met the budget after ``updates``, the
    search goes on for up to ``max_extra_updates`` more, stopping at the first update that finds
    one. With ``checkpoint`` (a path) the state is written atomically after every update and an
    interrupted search resumes where it stopped, with the same numbers.
    """
    updates = check_int("updates", updates, minimum=1)
    episodes_per_update = check_int("episodes_per_update (the baseline is the batch mean)", episodes_per_update,
                                    minimum=2)
    max_extra_updates = check_int("max_extra_updates", max_extra_updates, minimum=0)
    history, best, start = [], None, 0
    saved = read_json(checkpoint, required=("agent", "history", "best")) if checkpoint is not None else None
    if saved is not None:
        agent.load_state(saved["agent"])
        history, best, start = saved["history"], saved["best"], len(saved["history"])
    bar = trange(start, updates, desc="RL search", disable=not progress, leave=False)
    update = start
    while update < updates or (best is None and update < updates + max_extra_updates):
        batch = [agent.rollout(env) for _ in range(episodes_per_update)]
        greedy = agent.rollout(env, deterministic=True)
        for episode in [*batch, greedy]:
            episode.reward, episode.cost = env.evaluate(env.layer_masks(episode.fractions))
            if episode.cost <= agent.budget and (best is None or episode.reward > best["reward"]):
                best = {"reward": episode.reward, "cost": episode.cost, "fractions": episode.fractions.tolist(),
                        "update": update}
        stats = agent.update(batch)
        rewards, costs_ = [e.reward for e in batch], [e.cost for e in batch]
        history.append({"update": update, "reward_mean": float(np.mean(rewards)), "reward_max": float(np.max(rewards)),
                        "cost_mean": float(np.mean(costs_)), "feasible_share": float(np.mean(np.array(costs_) <= agent.budget)),
                        "greedy_reward": greedy.reward, "greedy_cost": greedy.cost, "multiplier": stats["multiplier"],
                        "std": stats["std"], "best_feasible_reward": None if best is None else best["reward"]})
        bar.set_postfix(reward=f"{history[-1]['reward_mean']:.3f}", cost=f"{history[-1]['cost_mean']:.3f}",
                        nu=f"{stats['multiplier']:.2f}")
        if checkpoint is not None:
            write_json(Path(checkpoint), {"agent": agent.state(), "history": history, "best": best})
        bar.update(1)
        update += 1
    bar.close()
    env.restore()
    return {"best": best, "history": history}


# --------------------------------------------------------------------------- the baselines


def least_pruning_meeting_budget(masks_for, env, budget, tolerance=1e-4, max_fraction=1.0):
    """Smallest fraction f in [0, max_fraction] with ``cost(masks_for(f)) <= budget``, by
    bisection (the cost is non-increasing in f). Returns ``(f, masks)``; raises if even
    ``max_fraction`` misses the budget."""
    budget = check_float("budget", budget, minimum=0.0, min_open=True)
    tolerance = check_float("tolerance", tolerance, minimum=0.0, min_open=True)
    max_fraction = check_float("max_fraction", max_fraction, minimum=0.0, maximum=1.0)

    def cost_at(f):
        env.apply(masks_for(f))
        return float(env.cost(env.model))

    try:
        if cost_at(0.0) <= budget:
            return 0.0, masks_for(0.0)
        if cost_at(max_fraction) > budget:
            raise ValueError(f"budget {budget} cannot be met even by pruning a fraction {max_fraction}")
        lo, hi = 0.0, max_fraction
        while hi - lo > tolerance:
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if cost_at(mid) <= budget else (mid, hi)
        return hi, masks_for(hi)
    finally:
        env.restore()


def uniform_fraction(env, budget, **kwargs):
    """Project 004's baseline: the same pruning fraction in every layer (or group) of ``env``."""
    return least_pruning_meeting_budget(lambda f: env.layer_masks(np.full(env.n_steps, f)), env, budget, **kwargs)


def global_fraction(env, budget, **kwargs):
    """Global pruning: one ranking (threshold) across the layers (or groups) of ``env``."""
    return least_pruning_meeting_budget(env.global_masks, env, budget, **kwargs)


BUDGET_METHODS = ("rl", "uniform", "global")
SEARCHES = {"uniform": uniform_fraction, "global": global_fraction}

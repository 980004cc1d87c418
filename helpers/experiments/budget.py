"""Budget-constrained pruning of LeNet-5 and the VGG (notebook 08, seed 004): the experiment
(``prune_to_budget``: the RL search of ``helpers.budget`` against the bisection baselines at the
same budget, then an equal fine-tune) and ``BudgetPruning``, the notebook's cached procedure.
"""

from __future__ import annotations

import numpy as np

from ..validation import (Bool, Budget, Callable, Choice, Epochs, Float, Int, List, Seed, Tuple, check_epochs,
                          check_float, check_int, check_parameters)
from .training import TRAINING_SPECS, trained_model

BUDGET_DATASETS = {"lenet5": "mnist", "vgg": "cifar10"}


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
    """The seed's baseline: the same magnitude-pruning fraction in every layer."""
    return least_pruning_meeting_budget(lambda f: env.layer_masks(np.full(env.n_layers, f)), env, budget, **kwargs)


def global_fraction(env, budget, **kwargs):
    """Global magnitude pruning: one threshold across layers."""
    return least_pruning_meeting_budget(env.global_masks, env, budget, **kwargs)


BUDGET_METHODS = ("rl", "uniform", "global")


def finetune_masked(model, masks, x, y, epochs, batch_size, learning_rate, seed=0):
    """Retrain ``model`` with ``masks`` kept applied in-graph (``helpers.pruning``), so the
    budget still holds afterwards."""
    import keras

    from ..pruning import attach_masks, detach_masks

    epochs = check_epochs("epochs", epochs, minimum=0)
    check_int("batch_size", batch_size, minimum=1)
    check_float("learning_rate", learning_rate, minimum=0.0, min_open=True)
    if epochs == 0:
        return model
    attach_masks(model, masks)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    detach_masks(model)
    return model


def prune_to_budget(model, data, cost, budget, methods=BUDGET_METHODS, eval_size=1000, updates=60,
                    episodes_per_update=8, seed=0, finetune_epochs=1, finetune_batch=32, finetune_lr=1e-3,
                    max_fraction=0.98, episode_finetune_steps=16, episode_finetune_lr=0.05, agent_kwargs=None,
                    checkpoint=None, progress=True):
    """Prune the trained ``model`` to ``cost(model) <= budget`` with every method in ``methods``
    (``"rl"``, ``"uniform"``, ``"global"``), then fine-tune each method's network equally.

    The reward of the RL search and nothing else is computed on the first ``eval_size`` images of
    ``data``'s validation split (held out from training), after ``episode_finetune_steps`` SGD
    steps of recovery (see ``LayerwisePruningEnv``); accuracies reported are on the test set.
    Returns a JSON-serialisable dict: ``rows`` (one per method: cost, budget_met, kept fraction per
    layer, test accuracy before and after the fine-tune), ``history`` of the RL search, ``layers``.
    """
    from ..budget import LagrangianPolicyGradient, LayerwisePruningEnv, search
    from ..pruning.costs import COST_KINDS

    cost = Callable()("cost", cost)
    # Named fraction costs (parameters, FLOPs) are at most 1: a budget must be in (0, 1]. Any
    # other cost (seconds of latency, a user's callable) only needs a finite positive budget.
    fraction_cost = getattr(cost, "kind", None) in COST_KINDS
    checked = check_parameters(dict(
        budget=budget, methods=methods, eval_size=eval_size, updates=updates, episodes_per_update=episodes_per_update,
        seed=seed, finetune_epochs=finetune_epochs, finetune_batch=finetune_batch, finetune_lr=finetune_lr,
        max_fraction=max_fraction, episode_finetune_steps=episode_finetune_steps,
        episode_finetune_lr=episode_finetune_lr, progress=progress), dict(
        budget=Budget() if fraction_cost else Float(0.0, min_open=True),
        methods=List(Choice(*BUDGET_METHODS), unique=True),
        eval_size=Int(1), updates=Int(1), episodes_per_update=Int(2), seed=Seed(), finetune_epochs=Epochs(0),
        finetune_batch=Int(1), finetune_lr=Float(0.0, min_open=True), max_fraction=Float(0.0, 1.0, min_open=True),
        episode_finetune_steps=Int(0), episode_finetune_lr=Float(0.0, min_open=True), progress=Bool()))
    budget, methods = checked["budget"], checked["methods"]
    if agent_kwargs is not None and not isinstance(agent_kwargs, dict):
        raise TypeError(f"agent_kwargs must be None or a dict, got {agent_kwargs!r} ({type(agent_kwargs).__name__})")
    if data.x_val is None or len(data.x_val) < eval_size:
        raise ValueError(f"prune_to_budget needs a validation split of at least eval_size={eval_size} images "
                         "(load the data with validation_size=...)")
    trained = model.get_weights()
    env = LayerwisePruningEnv(model, data.x_val[:eval_size], data.y_val[:eval_size], cost, max_fraction=max_fraction,
                              finetune_data=(data.x_train, data.y_train), finetune_steps=episode_finetune_steps,
                              finetune_lr=episode_finetune_lr)
    result = {"layers": [layer.name for layer in env.layers], "rows": [], "history": []}
    for method in methods:
        if method == "rl":
            # Start from uniform pruning at about twice the budget (cost fractions: keeping 1 - f of
            # every layer costs about 1 - f), infeasible but near the boundary, so the multiplier
            # does not wind up over a long approach; 0.5 for budgets the formula does not fit.
            init = min(max(1.0 - 2.0 * budget, 0.05), 0.9) if budget < 0.5 else 0.5
            agent = LagrangianPolicyGradient(env.n_features, budget, max_fraction=max_fraction,
                                             **{"init_fraction": init, "seed": seed, **(agent_kwargs or {})})
            found = search(env, agent, updates, episodes_per_update, checkpoint=checkpoint, progress=progress,
                           max_extra_updates=updates)
            result["history"] = found["history"]
            if found["best"] is None:
                raise RuntimeError(f"the RL search found no episode within the budget in {2 * updates} updates; "
                                   "raise `updates` or the multiplier's gains (agent_kwargs)")
            masks = env.layer_masks(np.array(found["best"]["fractions"]))
            extra = {"fraction": None, "search_reward": found["best"]["reward"]}
        else:
            fraction, masks = (uniform_fraction if method == "uniform" else global_fraction)(env, budget)
            extra = {"fraction": fraction, "search_reward": None}
        env.restore()
        env.apply(masks)
        measured = float(cost(model))
        eval_acc, before = env.accuracy(), env.accuracy(data.x_test, data.y_test)
        finetune_masked(model, env.masks_as_paths(masks), data.x_train, data.y_train, finetune_epochs,
                        finetune_batch, finetune_lr, seed)
        after_cost = float(cost(model))
        after = env.accuracy(data.x_test, data.y_test)
        result["rows"].append({"method": method, "cost": measured, "cost_after_finetune": after_cost,
                               "budget_met": bool(measured <= budget and after_cost <= budget),
                               "eval_acc": eval_acc, "test_acc_before_finetune": before,
                               "test_acc_after_finetune": after, "kept_per_layer": env.kept_fractions(masks),
                               **extra})
        model.set_weights(trained)
    return result


class BudgetPruning:
    """Notebook 08's procedure: pre-trained networks (trained, or loaded from the model cache,
    only when first needed) pruned to each budget by ``prune_to_budget``, every
    result cached under the configuration the notebook has always used.

    ``pretrain`` maps a model name to its ``trained_model`` arguments (epochs, batch_size,
    learning_rate, train_subset); ``search`` maps it to ``(updates, episode_finetune_steps)``.
    """

    def __init__(self, pretrain, search, methods, validation_size=5000, eval_size=1000, episodes_per_update=8,
                 finetune_epochs=1, seed=0, recompute=False):
        unknown = sorted(set(pretrain) - set(BUDGET_DATASETS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; choose from {sorted(BUDGET_DATASETS)}")
        # Everything is checked now, as trained_model and prune_to_budget would check it on a
        # cache miss (after the work of other budgets).
        check_parameters(dict(methods=methods, validation_size=validation_size, eval_size=eval_size,
                              episodes_per_update=episodes_per_update, finetune_epochs=finetune_epochs, seed=seed,
                              recompute=recompute),
                         dict(methods=List(Choice(*BUDGET_METHODS), unique=True), validation_size=Int(1),
                              eval_size=Int(1), episodes_per_update=Int(2), finetune_epochs=Epochs(0), seed=Seed(),
                              recompute=Bool()))
        for name in pretrain:
            check_parameters({"seed": seed, **pretrain[name]}, TRAINING_SPECS)
            Tuple(Int(1), Int(0))(f"search[{name!r}] (updates, episode_finetune_steps)", search.get(name))
        self.pretrain, self.search, self.methods = pretrain, search, list(methods)
        self.validation_size, self.eval_size, self.episodes_per_update = validation_size, eval_size, episodes_per_update
        self.finetune_epochs, self.seed, self.recompute = finetune_epochs, seed, recompute
        self._trained = {}

    def check_budget(self, kind, value):
        from ..pruning.costs import COST_KINDS

        if kind not in COST_KINDS or not 0 < value < 1:
            raise ValueError(f"budget {[kind, value]} must be [one of {sorted(COST_KINDS)}, "
                             "a fraction in (0, 1)]")

    def pretrained(self, name):
        if name not in self._trained:
            self._trained[name] = trained_model(name, BUDGET_DATASETS[name], seed=self.seed,
                                                data_kwargs={"validation_size": self.validation_size},
                                                **self.pretrain[name])
        return self._trained[name]

    def _compute(self, name, kind, value):
        model, data = self.pretrained(name)
        updates, steps = self.search[name]
        from ..pruning.costs import make_cost

        result = prune_to_budget(
            model, data, make_cost(kind, model), value, methods=self.methods, eval_size=self.eval_size,
            updates=updates, episodes_per_update=self.episodes_per_update, seed=self.seed,
            finetune_epochs=self.finetune_epochs, finetune_batch=self.pretrain[name]["batch_size"],
            episode_finetune_steps=steps)
        result["dense_test_acc"] = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))
        result["data_label"] = data.label
        return result

    def run(self, name, kind, value):
        """``(result, from the cache?)`` of pruning model ``name`` to ``kind <= value``."""
        from ..cache import cached

        self.check_budget(kind, value)
        updates, steps = self.search[name]
        config = dict(model=name, kind=kind, budget=value, methods=self.methods, pretrain=self.pretrain[name],
                      validation_size=self.validation_size, eval_size=self.eval_size, updates=updates,
                      episodes_per_update=self.episodes_per_update, episode_finetune_steps=steps,
                      finetune_epochs=self.finetune_epochs, seed=self.seed)
        return cached("budget_pruning", config, lambda: self._compute(name, kind, value), recompute=self.recompute)

    def protocol(self, results, name):
        """One line describing model ``name``'s data and pre-training, from its cached results."""
        pretrain = self.pretrain[name]
        first = results[next(key for key in results if key[0] == name)]
        return (f"{first['data_label']}, pre-trained {pretrain['epochs']} epochs"
                + (f" on {pretrain['train_subset']:,} images" if pretrain["train_subset"] else "")
                + f", dense test accuracy {first['dense_test_acc']:.4f}")


def budget_table(results):
    """One row per (model, budget, method) of ``{(model, kind, value): result}``."""
    import pandas as pd

    return pd.DataFrame([{"model": name, "budget_kind": kind, "budget": value, "method": row["method"],
                          "cost": row["cost"], "budget_met": row["budget_met"],
                          "test_acc_before_finetune": row["test_acc_before_finetune"],
                          "test_acc_after_finetune": row["test_acc_after_finetune"]}
                         for (name, kind, value), result in results.items() for row in result["rows"]])


def budget_verdict(table):
    """RL's test accuracy minus each baseline's, in points, before and after the fine-tune."""
    import pandas as pd

    verdict = []
    for (name, kind, value), part in table.groupby(["model", "budget_kind", "budget"], sort=False):
        by = part.set_index("method")
        if "rl" not in by.index:
            continue
        for baseline in [m for m in ("uniform", "global") if m in by.index]:
            for stage in ("before", "after"):
                column = f"test_acc_{stage}_finetune"
                verdict.append({"model": name, "budget": f"{kind} <= {value}", "vs": baseline, "stage": stage,
                                "rl_minus_baseline_pp": 100 * (by.loc["rl", column] - by.loc[baseline, column])})
    return pd.DataFrame(verdict)

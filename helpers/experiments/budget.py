"""Budget-constrained pruning of LeNet-5, the VGG and a CIFAR ResNet-20 (notebook 08, project 004):
the study, not the method. ``prune_to_budget`` runs the RL search of ``helpers.pruning.budget``
against its bisection baselines at the same budget, then the same masked retrain
(``pruning.retrain_with_masks``) for every method; ``BudgetPruning`` is the notebook's cached
procedure; ``budget_table`` and ``budget_verdict`` are its tables. The environments, the agent,
the search and the baselines are in ``helpers.pruning.budget``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cache import ResultCache
from ..callbacks import Diverged, NonFiniteGuard
from ..plotting import format_mean_std
from ..pruning import compact, costs, criteria
from ..pruning.budget import (BUDGET_METHODS, SEARCHES, GroupPruningEnv, LagrangianPolicyGradient, LayerwisePruningEnv,
                              initial_fraction)
from ..pruning.budget import search as rl_search  # the studies take a `search` argument
from ..pruning.costs import COST_KINDS, make_cost
from ..pruning.masks import retrain_with_masks
from ..runner import RunFailedError
from ..validation import (Bool, Budget, Callable, Choice, Dict, Epochs, Float, Int, List, Optional, Seed, Str, Tuple,
                          check_parameters, validated)
from .study import Study, setting, state
from .training import RECIPE_SPECS, TRAINING_SPECS, pretraining_history, trained_model, weights_name

BUDGET_DATASETS = {"lenet5": "mnist", "vgg": "cifar10", "resnet20": "cifar10"}
# What the policy acts on per model: layers' weights, or the dependency graph's channel groups
# (a residual network is pruned by filters, every result compacted).
BUDGET_GRANULARITY = {"lenet5": "weight", "vgg": "weight", "resnet20": "filter"}
GRANULARITIES = ("weight", "filter")


@validated(cost=Callable(), methods=List(Choice(*BUDGET_METHODS), unique=True), eval_size=Int(1), updates=Int(1),
           episodes_per_update=Int(2), seed=Seed(), finetune_epochs=Epochs(0), finetune_batch=Int(1),
           finetune_lr=Float(0.0, min_open=True), max_fraction=Float(0.0, 1.0, min_open=True),
           episode_finetune_steps=Int(0), episode_finetune_lr=Float(0.0, min_open=True), progress=Bool(),
           granularity=Choice(*GRANULARITIES), bn_recalibration=Int(0))
def prune_to_budget(model, data, cost, budget, methods=BUDGET_METHODS, eval_size=1000, updates=60,
                    episodes_per_update=8, seed=0, finetune_epochs=1, finetune_batch=32, finetune_lr=1e-3,
                    max_fraction=0.98, episode_finetune_steps=16, episode_finetune_lr=0.05, agent_kwargs=None,
                    checkpoint=None, progress=True, granularity="weight", importance="magnitude",
                    importance_data=None, bn_recalibration=0):
    """Prune the trained ``model`` to ``cost(model) <= budget`` with every method in ``methods``
    (``"rl"``, ``"uniform"``, ``"global"``), then fine-tune each method's network equally.

    ``cost`` is any callable ``model -> float`` (``pruning.costs.make_cost("parameters" |
    "flops", model)``, a latency, your own); ``importance`` any of ``pruning.criteria``'s (a name
    or a callable; ``importance_data=(x, y)`` for ``"taylor"``). ``granularity="weight"``: the
    policy picks a fraction of single weights per layer (``LayerwisePruningEnv``);
    ``"filter"``: a fraction of channels per dependency-graph group (``GroupPruningEnv``:
    residual groups pruned together), and every method's fine-tuned network is compacted
    (``pruning.compact``, exact or an error) and its parameters, FLOPs and the wall times are
    recorded. ``bn_recalibration > 0``: that many training images re-estimate the BN statistics
    of every pruned network (``pruning.recalibrate_batch_norm``), in each episode after its
    recovery and for every method before its accuracy is measured and it is fine-tuned.

    The reward of the RL search and nothing else is computed on the first ``eval_size`` images of
    ``data``'s validation split (held out from training), after ``episode_finetune_steps`` SGD
    steps of recovery (see ``LayerwisePruningEnv``); accuracies reported are on the test set.
    Returns a JSON-serialisable dict: ``rows`` (one per method: cost, budget_met, kept fraction per
    layer or group, test accuracy before and after the fine-tune), ``history`` of the RL search,
    ``layers`` (the layer or group names).
    """
    # Named fraction costs (parameters, FLOPs) are at most 1: a budget must be in (0, 1]. Any
    # other cost (seconds of latency, a user's callable) only needs a finite positive budget.
    fraction_cost = getattr(cost, "kind", None) in COST_KINDS
    budget = (Budget() if fraction_cost else Float(0.0, min_open=True))("budget", budget)
    if agent_kwargs is not None and not isinstance(agent_kwargs, dict):
        raise TypeError(f"agent_kwargs must be None or a dict, got {agent_kwargs!r} ({type(agent_kwargs).__name__})")
    if data.x_val is None or len(data.x_val) < eval_size:
        raise ValueError(f"prune_to_budget needs a validation split of at least eval_size={eval_size} images "
                         "(load the data with validation_size=...)")
    structured = granularity == "filter"
    trained = model.get_weights()
    Env = GroupPruningEnv if structured else LayerwisePruningEnv
    env = Env(model, data.x_val[:eval_size], data.y_val[:eval_size], cost, max_fraction=max_fraction,
              finetune_data=(data.x_train, data.y_train), finetune_steps=episode_finetune_steps,
              finetune_lr=episode_finetune_lr, importance=importance, importance_data=importance_data,
              recalibration_data=data.x_train[:bn_recalibration] if bn_recalibration else None)
    result = {"layers": env.names, "rows": [], "history": []}
    if structured:
        result["granularity"] = "filter"
        result["dense_parameters"] = int(model.count_params())
    for method in methods:
        started = time.perf_counter()
        if method == "rl":
            agent = LagrangianPolicyGradient(env.n_features, budget, max_fraction=max_fraction,
                                             **{"init_fraction": initial_fraction(budget, granularity), "seed": seed,
                                                **(agent_kwargs or {})})
            found = rl_search(env, agent, updates, episodes_per_update, checkpoint=checkpoint, progress=progress,
                              max_extra_updates=updates)
            result["history"] = found["history"]
            if found["best"] is None:
                raise RuntimeError(f"the RL search found no episode within the budget in {2 * updates} updates; "
                                   "raise `updates` or the multiplier's gains (agent_kwargs)")
            masks = env.layer_masks(np.array(found["best"]["fractions"]))
            extra = {"fraction": None, "search_reward": found["best"]["reward"]}
        else:
            fraction, masks = SEARCHES[method](env, budget)
            extra = {"fraction": fraction, "search_reward": None}
        search_seconds = time.perf_counter() - started
        env.restore()
        env.apply(masks)
        env.recalibrate()
        measured = float(cost(model))
        eval_acc, before = env.accuracy(), env.accuracy(data.x_test, data.y_test)
        try:  # a diverged fine-tune is a failure, never a row
            retrain_with_masks(model, env.masks_as_paths(masks), data.x_train, data.y_train, finetune_epochs,
                               finetune_batch, finetune_lr, seed, callbacks=[NonFiniteGuard()])
        except Diverged as exc:
            raise RunFailedError(f"{method} fine-tune at {budget}", exc.reason, exc.epoch) from None
        after_cost = float(cost(model))
        after = env.accuracy(data.x_test, data.y_test)
        row = {"method": method, "cost": measured, "cost_after_finetune": after_cost,
               "budget_met": bool(measured <= budget and after_cost <= budget),
               "eval_acc": eval_acc, "test_acc_before_finetune": before,
               "test_acc_after_finetune": after, "kept_per_layer": env.kept_fractions(masks), **extra}
        if structured:
            row.update(_compacted(model, cost, data, env.batch_size), search_seconds=search_seconds)
            row["budget_met"] = bool(row["budget_met"] and row["compact_cost"] <= budget)
        result["rows"].append(row)
        model.set_weights(trained)
    return result


# Latency of the masked (dense-shaped) and the compacted network: median of this many
# predict_on_batch calls at this batch size, the two models' calls interleaved.
LATENCY_BATCH, LATENCY_REPEATS = 64, 15


def _compacted(model, cost, data, batch_size):
    """The masked, fine-tuned ``model`` compacted (``pruning.compact`` checks it computes the same
    outputs, or raises): its parameters, FLOPs, cost, test accuracy and the times, including the
    latency of both networks (``LATENCY_BATCH`` images, median of ``LATENCY_REPEATS`` interleaved
    calls each, one process: their ratio is the measured speed-up)."""
    started = time.perf_counter()
    small, _ = compact(model)
    compact_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictions = small.predict(data.x_test, batch_size=batch_size, verbose=0)
    predict_seconds = time.perf_counter() - started
    x = np.asarray(data.x_test[:LATENCY_BATCH])
    times = {"masked": [], "compact": []}
    for net in (model, small):  # warm-up: traced once each
        net.predict_on_batch(x)
    for _ in range(LATENCY_REPEATS):
        for label, net in (("masked", model), ("compact", small)):
            started = time.perf_counter()
            net.predict_on_batch(x)
            times[label].append(time.perf_counter() - started)
    return {"compact_parameters": int(small.count_params()), "compact_flops": int(costs.flops(small)),
            "dense_flops": int(costs.flops(model)), "compact_cost": float(cost(small)),
            "compact_test_acc": float(np.mean(np.argmax(predictions, -1) == np.asarray(data.y_test).reshape(-1))),
            "compact_seconds": compact_seconds, "compact_predict_seconds": predict_seconds,
            "latency_batch": LATENCY_BATCH, "masked_latency": float(np.median(times["masked"])),
            "compact_latency": float(np.median(times["compact"]))}


@dataclass(frozen=True)
class BudgetPruning(Study):
    """Notebook 08's procedure: pre-trained networks (trained, or loaded from the model cache,
    only when first needed) pruned to each budget by ``prune_to_budget``, every
    result cached under the configuration the notebook has always used.

    ``pretrain`` maps a model name to its ``trained_model`` arguments (epochs, batch_size,
    learning_rate, train_subset); ``search`` maps it to ``(updates, episode_finetune_steps)``.
    LeNet-5 and the VGG are pruned by weights, the ResNet by filters (``BUDGET_GRANULARITY``);
    ``importance`` is the name of any registered criterion (``pruning.criteria.IMPORTANCES``) but
    one that needs the loss gradients (``"taylor"``: no batch is passed here).
    """

    pretrain: dict  # checked in check(): hashed as given
    search: dict = setting(Dict(Choice(*BUDGET_DATASETS), Tuple(Int(1), Int(0))))
    methods: list = setting(List(Choice(*BUDGET_METHODS), unique=True))
    validation_size: int = setting(Int(1), 5000)
    eval_size: int = setting(Int(1), 1000)
    episodes_per_update: int = setting(Int(2), 8)
    finetune_epochs: int = setting(Epochs(0), 1)
    seed: int = setting(Seed(), 0)
    recompute: bool = setting(Bool(), False, key=False)
    importance: str = setting(Str(), "magnitude")  # a registered criterion's name (check())
    # model -> training images that re-estimate its BN statistics after pruning (0 or absent: none)
    bn_recalibration: dict | None = setting(Optional(Dict(Choice(*BUDGET_DATASETS), Int(0))), None)
    _trained: dict = state()

    def check(self):
        # A name, so that it can be part of the cache key; one registered after this module was
        # imported is fine, one that needs a batch of gradients is not (none is passed here).
        if criteria.get_importance(self.importance).needs_gradients:
            raise ValueError(f"importance {self.importance!r} needs the loss gradients on a batch, which the budget "
                             "study does not pass; choose one that scores the weights alone")
        # Each model's pre-training is checked now, as trained_model would check it on a cache
        # miss (after the work of other budgets); its arguments are hashed as given.
        if not isinstance(self.pretrain, dict):
            raise TypeError(f"pretrain must be a dict {{model: trained_model arguments}}, got {self.pretrain!r:.80}")
        unknown = sorted(set(self.pretrain) - set(BUDGET_DATASETS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; choose from {sorted(BUDGET_DATASETS)}")
        for name, arguments in self.pretrain.items():
            check_parameters({"seed": self.seed, **arguments}, TRAINING_SPECS)
            unknown = sorted(set(arguments) - set(TRAINING_SPECS) - set(RECIPE_SPECS))
            if unknown:
                raise TypeError(f"pretrain[{name!r}] has unknown arguments {unknown}; "
                                f"known: {sorted({*TRAINING_SPECS, *RECIPE_SPECS} - {'seed'})}")
            check_parameters(arguments, {k: RECIPE_SPECS[k] for k in RECIPE_SPECS if k in arguments})
            if name not in self.search:
                raise ValueError(f"search has no (updates, episode_finetune_steps) for {name!r}")

    def check_budget(self, kind, value):
        """A named fraction cost and a budget the notebook's spec allows (``validation.Budget``)."""
        Choice(*COST_KINDS)("budget kind", kind)
        Budget()(f"budget ({kind})", value)

    def config(self, model, kind, budget):
        """The cache configuration of pruning ``model`` to ``kind <= budget``."""
        updates, steps = self.search[model]
        return self.legacy(dict(
            model=model, kind=kind, budget=budget, methods=self.methods, pretrain=self.pretrain[model],
            validation_size=self.validation_size, eval_size=self.eval_size, updates=updates,
            episodes_per_update=self.episodes_per_update, episode_finetune_steps=steps,
            finetune_epochs=self.finetune_epochs, seed=self.seed, granularity=BUDGET_GRANULARITY[model],
            importance=self.importance, bn_recalibration=self.recalibration_images(model)))

    def legacy(self, config):
        # Results cached before filter pruning, other importances and BN recalibration existed keep
        # their keys: the key names each only where it is not the default.
        if config["granularity"] == "weight":
            del config["granularity"]
        if config["importance"] == "magnitude":
            del config["importance"]
        if config["bn_recalibration"] == 0:
            del config["bn_recalibration"]
        return config

    def recalibration_images(self, model):
        return (self.bn_recalibration or {}).get(model, 0)

    def pretrained(self, name):
        if name not in self._trained:
            self._trained[name] = trained_model(name, BUDGET_DATASETS[name], seed=self.seed,
                                                data_kwargs={"validation_size": self.validation_size},
                                                **self.pretrain[name])
        return self._trained[name]

    def search_checkpoint(self, name, kind, value):
        """Where the RL search of this result keeps its state after every update (``partial/``,
        committed between sessions), so that a search longer than a session resumes exactly."""
        return ResultCache().path("partial", f"budget_pruning-{self.key(model=name, kind=kind, budget=value)}.json")

    def _compute(self, name, kind, value):
        model, data = self.pretrained(name)
        updates, steps = self.search[name]
        result = prune_to_budget(
            model, data, make_cost(kind, model), value, methods=self.methods, eval_size=self.eval_size,
            updates=updates, episodes_per_update=self.episodes_per_update, seed=self.seed,
            finetune_epochs=self.finetune_epochs, finetune_batch=self.pretrain[name]["batch_size"],
            episode_finetune_steps=steps, granularity=BUDGET_GRANULARITY[name], importance=self.importance,
            checkpoint=self.search_checkpoint(name, kind, value), bn_recalibration=self.recalibration_images(name))
        result["dense_test_acc"] = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))
        result["data_label"] = data.label
        history = pretraining_history(weights_name(name, BUDGET_DATASETS[name], seed=self.seed,
                                                   data_kwargs={"validation_size": self.validation_size},
                                                   **self.pretrain[name]))
        if history:  # the resumable recipe's measured epochs (loss, accuracy, seconds)
            result["pretraining_history"] = history
        return result

    def run(self, name, kind, value, cached_only=False):
        """``(result, from the cache?)`` of pruning model ``name`` to ``kind <= value``; with
        ``cached_only``, ``(None, False)`` when it is not in the cache (nothing is computed)."""
        self.check_budget(kind, value)
        result, hit = self.cached("budget_pruning", lambda: self._compute(name, kind, value), cached_only=cached_only,
                                  model=name, kind=kind, budget=value)
        if result is not None and not hit:  # stored: the search's checkpoint is done with
            self.search_checkpoint(name, kind, value).unlink(missing_ok=True)
        return result, hit


def budget_protocol(results, name, pretrain):
    """One line describing model ``name``'s data and pre-training (``pretrain``: its
    ``trained_model`` arguments), from its results ``{(model, kind, value, seed): result}``: the
    dense test accuracy over the seeds found."""
    found = {key[3]: result for key, result in results.items() if key[0] == name}
    dense = [result["dense_test_acc"] for result in found.values()]
    recipe = [what for what, on in (("random crops and flips", pretrain.get("augment")),
                                    ("cosine rate", pretrain.get("lr_schedule") == "cosine")) if on]
    return (f"{next(iter(found.values()))['data_label']}, pre-trained {pretrain['epochs']} epochs"
            + (f" on {pretrain['train_subset']:,} images" if pretrain["train_subset"] else "")
            + (f" ({', '.join(recipe)})" if recipe else "")
            + f", dense test accuracy {mean_std(dense, 4)} (seed{'s' * (len(found) > 1)} "
            + ", ".join(map(str, sorted(found))) + ")")


def mean_std(values, digits):
    """``"m ± s"`` of ``values`` (sample std), ``"m ± –"`` for a single value."""
    values = np.asarray(values, dtype=float)
    return format_mean_std(values.mean(), values.std(ddof=1) if len(values) > 1 else float("nan"), digits)


def budget_sweep(pretrain, search, budgets, seeds, methods, run_missing=True, **study_kwargs):
    """Notebook 08's results: every model of ``pretrain`` at each of its ``budgets[model]``
    (``[(kind, value), ...]``) for every seed, one ``BudgetPruning`` per seed (its other
    arguments ``study_kwargs``). Returns ``(results, missing)``: ``results[(model, kind, value,
    seed)]`` is ``prune_to_budget``'s result, ``missing`` the keys not in the cache when
    ``run_missing`` is false (nothing is computed for them). Every budget is checked first."""
    studies = [BudgetPruning(pretrain, search, methods, seed=seed, **study_kwargs) for seed in seeds]
    for name in pretrain:
        for kind, value in budgets[name]:
            studies[0].check_budget(kind, value)
    results, missing = {}, []
    for study in studies:
        for name in pretrain:
            for kind, value in budgets[name]:
                result, _ = study.run(name, kind, value, cached_only=not run_missing)
                if result is None:
                    missing.append((name, kind, value, study.seed))
                else:
                    results[name, kind, value, study.seed] = result
    return results, missing


def budget_table(results):
    """One row per (model, budget, seed, method) of ``{(model, kind, value, seed): result}``."""
    return pd.DataFrame([{"model": name, "budget_kind": kind, "budget": value, "seed": seed, "method": row["method"],
                          "cost": row["cost"], "budget_met": row["budget_met"],
                          "test_acc_before_finetune": row["test_acc_before_finetune"],
                          "test_acc_after_finetune": row["test_acc_after_finetune"]}
                         for (name, kind, value, seed), result in results.items() for row in result["rows"]])


def budget_summary(table):
    """Mean and std over the seeds of each (model, budget, method): test accuracy before and
    after the fine-tune, cost, and whether every seed met the budget."""
    grouped = table.groupby(["model", "budget_kind", "budget", "method"], sort=False)
    summary = grouped.agg(seeds=("seed", "count"), cost=("cost", "mean"), budget_met=("budget_met", "all"),
                          before_mean=("test_acc_before_finetune", "mean"),
                          before_std=("test_acc_before_finetune", "std"),
                          after_mean=("test_acc_after_finetune", "mean"),
                          after_std=("test_acc_after_finetune", "std")).reset_index()
    return summary


def budget_verdict(table):
    """RL's test accuracy minus each baseline's, in points, before and after the fine-tune, over
    the seeds: mean, std, and the outcome: ``wins`` / ``loses`` where RL is better / worse in
    every seed, ``mixed`` where the seeds disagree (with one seed, its sign)."""
    verdict = []
    for (name, kind, value), part in table.groupby(["model", "budget_kind", "budget"], sort=False):
        if "rl" not in set(part.method):
            continue
        for baseline in [m for m in ("uniform", "global") if m in set(part.method)]:
            for stage in ("before", "after"):
                column = f"test_acc_{stage}_finetune"
                by = part.pivot_table(index="seed", columns="method", values=column)
                difference = 100 * (by["rl"] - by[baseline]).dropna().to_numpy()
                outcome = "wins" if (difference > 0).all() else "loses" if (difference < 0).all() else "mixed"
                verdict.append({"model": name, "budget": f"{kind} <= {value}", "vs": baseline, "stage": stage,
                                "seeds": len(difference), "rl_minus_baseline_pp": difference.mean(),
                                "std_pp": difference.std(ddof=1) if len(difference) > 1 else float("nan"),
                                "outcome": outcome})
    return pd.DataFrame(verdict)


def verdict_labels(verdict):
    """Notebook 08's cells of ``budget_verdict``: ``"+m ± s (outcome, n seeds)"`` per row."""
    return [f"{format_mean_std(m, s, 2, sign='+')} ({o}, {n} seed{'s' * (n > 1)})"
            for m, s, o, n in zip(verdict.rl_minus_baseline_pp, verdict.std_pp, verdict.outcome, verdict.seeds)]


def compaction_table(results):
    """The filter-pruned (compacted) rows of ``results``: parameters and FLOPs of the compacted
    network against the dense one, the latency of the compacted network against the masked one
    (``_compacted``), and the compacted network's test accuracy minus the masked one's (0 but for
    an argmax tie that float rounding tips: ``compact`` checked the outputs agree)."""
    rows = []
    for (name, kind, value, seed), result in results.items():
        for row in result["rows"]:
            if "compact_parameters" not in row:
                continue
            rows.append({"model": name, "budget": f"{kind} <= {value}", "seed": seed, "method": row["method"],
                         "parameters": f"{result['dense_parameters']:,} -> {row['compact_parameters']:,}",
                         "parameter_ratio": row["compact_parameters"] / result["dense_parameters"],
                         "flop_ratio": row["compact_flops"] / row["dense_flops"],
                         "latency_ratio": row["compact_latency"] / row["masked_latency"],
                         "accuracy_change": row["compact_test_acc"] - row["test_acc_after_finetune"]})
    return pd.DataFrame(rows)

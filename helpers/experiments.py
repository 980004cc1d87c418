"""The paper's experiments as lists of ``RunConfig``: one definition shared by the notebooks
and by long background sweeps (``python -m helpers.experiments smgd --dataset mnist``).
"""

from __future__ import annotations

import argparse
import functools
import itertools
from dataclasses import dataclass

import numpy as np

from . import pareto
from .runner import RunConfig, run_experiment, run_sweep
from .validation import (Bool, Budget, Callable, Choice, Dict, Float, Fraction, Int, List, Optional, check_bool,
                         check_choice, check_float, check_int, check_parameters, check_writable)

# The optimizer comparison of REPRODUCTION_NOTES.md §6.1: multi-objective methods and their Keras baselines.
PAPER_OPTIMIZERS = {"mnist": ("smgd", "madam", "sgd", "adam"),
                    "cifar10": ("smgd", "mrmsprop", "sgd", "rmsprop")}
PAPER_EPOCHS = {"mnist": 30, "cifar10": 125}
ITP_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}


def smgd_comparison(dataset="mnist", optimizers=None, itp="both", epochs=None, seeds=(0,),
                    learning_rates=None, batch_size=None, train_subset=None, protocol="faithful",
                    eval_train=True):
    """Configs of notebook 03: every (optimizer, itp, seed), in seed-major order so that an
    interrupted sweep has finished whole seeds first.

    ``learning_rates`` maps optimizer -> eta0 (per-optimizer rates, REPRODUCTION_NOTES.md, B6); missing ones
    take the protocol default.
    """
    from .data import check_dataset_name
    from .runner import OPTIMIZERS

    dataset = check_dataset_name(dataset)
    if dataset not in PAPER_OPTIMIZERS and optimizers is None:
        raise ValueError(f"dataset {dataset!r} has no paper optimizers; choose one of {', '.join(PAPER_OPTIMIZERS)} "
                         "or pass optimizers")
    itp = check_choice("itp", itp, ITP_CHOICES)
    checked = check_parameters(
        dict(optimizers=optimizers, epochs=epochs, seeds=seeds, learning_rates=learning_rates),
        dict(optimizers=Optional(List(Choice(*OPTIMIZERS), unique=True)), epochs=Optional(Int(1)),
             seeds=List(Int(0), unique=True), learning_rates=Optional(Dict(Choice(*OPTIMIZERS),
                                                                           Float(0.0, min_open=True)))))
    optimizers, epochs, seeds = checked["optimizers"], checked["epochs"], checked["seeds"]
    optimizers = tuple(optimizers or PAPER_OPTIMIZERS[dataset])
    learning_rates = dict(checked["learning_rates"] or {})
    unknown = set(learning_rates) - set(optimizers)
    if unknown:
        raise ValueError(f"learning rates given for optimizers not in the run: {sorted(unknown)}")
    configs = [RunConfig(dataset=dataset, optimizer=opt, itp=flag,
                         epochs=epochs if epochs is not None else PAPER_EPOCHS[dataset],
                         seed=seed, learning_rate=learning_rates.get(opt), batch_size=batch_size,
                         train_subset=train_subset, protocol=protocol, eval_train=eval_train)
               for seed, opt, flag in itertools.product(seeds, optimizers, ITP_CHOICES[itp])]
    return [c.resolved() for c in configs]  # validates everything before any training


SUMMARY_COLUMNS = ["optimizer", "itp", "seed", "epochs", "train_acc", "test_acc", "test_ce", "l1_dense", "nnz_dense",
                   "dense_weights", "pruned_fraction_dense"]
SUMMARY_TAIL = ["learning_rate", "batch_size", "train_subset", "protocol", "train_seconds"]


def comparison_summary(results):
    """Notebook 03's ``<dataset>_summary.csv``: one row per run, nonzeros and pruned fractions per
    dense layer included."""
    from .runner import summary_frame

    summary = summary_frame(results)
    per_layer = [c for c in summary.columns if c.startswith("nnz/")] + \
        [c for c in summary.columns if c.startswith("pruned_fraction/")]
    return summary[SUMMARY_COLUMNS + per_layer + SUMMARY_TAIL]


def comparison_table(summary):
    """Mean ± sample std over seeds per (optimizer, itp) of notebook 03's summary."""
    import pandas as pd

    def mean_std(frame, column, digits):
        g = frame.groupby(["optimizer", "itp"], sort=False)[column].agg(["mean", "std"])
        return g.apply(lambda r: f"{r['mean']:.{digits}f} ± {0 if np.isnan(r['std']) else r['std']:.{digits}f}", axis=1)

    return pd.DataFrame({
        "test acc": mean_std(summary, "test_acc", 4),
        "test CE": mean_std(summary, "test_ce", 4),
        "dense pruned %": mean_std(summary.assign(p=100 * summary.pruned_fraction_dense), "p", 1),
        **{f"{c.split('/')[1]} pruned %": mean_std(summary.assign(p=100 * summary[c]), "p", 1)
           for c in summary.columns if c.startswith("pruned_fraction/")},
        "runs": summary.groupby(["optimizer", "itp"], sort=False).size(),
    })


# The 26 weightings of the original paretofront.py, in its list order (lambda1 = 1 - lambda2).
ORIGINAL_GRID = (0, 1e-4, 3e-4, 5e-4, 7e-4, 9e-4, 1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 1e-3, 3e-3, 5e-3, 7e-3, 9e-3,
                 1e-2, 2e-2, 1.5e-2, 2.5e-2, 3e-2, 3.5e-2, 5e-2, 7e-2, 9e-2, 0.1)


def weighted_sum_run(lambda2, epochs=10, seed=0, learning_rate=1e-3, train_subset=None, validation_size=0,
                     protocol="faithful", optimizer="madam", lambda1=None, scalarization="separate"):
    """One weighted-sum run of the search scripts (REPRODUCTION_NOTES.md §6.2): MAdam with fixed weights
    (lambda1, lambda2), lambda1 = 1 - lambda2 unless given, ITP on, no schedule and no decay,
    batch 32, on MNIST. ``scalarization="separate"`` is the published MAdam (one moment stream
    per objective); ``"joint"`` is Adam on the weighted sum itself."""
    lambda2 = check_float("lambda2", lambda2, minimum=0.0, maximum=1.0)
    lambda1 = 1.0 - lambda2 if lambda1 is None else check_float("lambda1", lambda1, minimum=0.0)
    return RunConfig(dataset="mnist", optimizer=optimizer, weights=(lambda1, lambda2), itp=True,
                     epochs=epochs, seed=seed, learning_rate=learning_rate, lr_schedule="constant",
                     train_subset=train_subset, validation_size=validation_size, protocol=protocol,
                     eval_train=False, scalarization=scalarization).resolved()


def weighted_sum_grid(dense_points=40, dense_max=9e-4, include_original=True, **run_kwargs):
    """Configs of notebook 04: the original 26 weightings plus ``dense_points`` values of lambda2
    evenly spaced in [0, dense_max] (Fig. 4's range), without duplicates."""
    dense_points = check_int("dense_points", dense_points, minimum=0)
    dense_max = check_float("dense_max", dense_max, minimum=0.0, maximum=1.0)
    include_original = check_bool("include_original", include_original)
    values = list(ORIGINAL_GRID) if include_original else []
    values += [float(v) for v in np.linspace(0.0, dense_max, dense_points)] if dense_points else []
    unique = list(dict.fromkeys(round(v, 12) for v in values))
    return [weighted_sum_run(v, **run_kwargs) for v in unique]


def grid_table(results, select_on="test"):
    """Notebook 04's ``grid.csv``: one row per weighted-sum run, sorted by scalarization (separate
    first) and lambda2; ``nondominated`` marks, per scalarization, the points no other point of
    the same grid beats in both cross-entropy (on ``select_on``) and l1."""
    import pandas as pd

    rows = [{"scalarization": r.config.scalarization, "lambda2": r.config.weights[1],
             "test_ce": r.summary["test_ce"], "l1_dense": r.summary["l1_dense"], "nnz_dense": r.summary["nnz_dense"],
             "test_acc": r.summary["test_acc"],
             **({"val_ce": r.history["val_ce"][-1], "val_acc": r.history["val_accuracy"][-1]}
                if select_on == "val" else {})} for r in results]
    grid = pd.DataFrame(rows)
    grid["order"] = grid.scalarization.map({"separate": 0, "joint": 1})
    grid = grid.sort_values(["order", "lambda2"]).drop(columns="order").reset_index(drop=True)
    grid["nondominated"] = False
    for _, part in grid.groupby("scalarization"):
        grid.loc[part.index, "nondominated"] = pareto.nondominated_mask(part[[f"{select_on}_ce", "l1_dense"]].to_numpy())
    return grid


def fig4_band_table(grid):
    """Fig. 4's lambda bands (``helpers.paper.FIG4_BANDS``): the paper's ranges beside the median
    (and range) of each scalarization's runs in the band."""
    import pandas as pd

    from .paper import FIG4_BANDS

    def fmt(values, digits):
        return f"{values.min():,.{digits}f}-{values.max():,.{digits}f}" if len(values) else "-"

    columns = (("nnz_dense", 0), ("l1_dense", 0), ("test_ce", 3), ("test_acc", 3))
    rows = []
    for band in FIG4_BANDS:
        for source in ("paper", *dict.fromkeys(grid.scalarization)):
            row = {"lambda2 band": band["band"], "source": source}
            if source == "paper":
                row.update({"runs": "", **{k: f"{band[k][0]:,.{d}f}-{band[k][1]:,.{d}f}" for k, d in columns}})
            else:
                g = grid[(grid.scalarization == source) & (grid.lambda2 >= band["lo"]) & (grid.lambda2 < band["hi"])]
                row["runs"] = str(len(g))
                for column, digits in columns:
                    row[column] = f"{g[column].median():,.{digits}f} ({fmt(g[column], digits)})" if len(g) else "-"
            rows.append(row)
    return pd.DataFrame(rows).rename(columns={"nnz_dense": "nonzeros", "l1_dense": "l1 (dense)",
                                              "test_ce": "test CE", "test_acc": "test acc"})


# ---------------------------------------------------------------------------------------------
# Knee search (notebook 05): the weighted-sum searches of spec 7 on real training runs
# ---------------------------------------------------------------------------------------------

SEARCH_METHODS = ("bisection", "dichotomic", "stochastic", "grid")


@dataclass(frozen=True)
class KneeSearch:
    """The settings of notebook 05's searches; every candidate is one cached weighted-sum run.

    ``protocol="faithful"``: the original filter, no filter after the last level (B21);
    ``"clean"``: convex filter, always filtered. ``select_on="val"`` scores candidates on the
    last 10,000 training images instead of the test set (B22).
    """

    epochs: int = 10
    seed: int = 0
    learning_rate: float = 1e-3
    train_subset: int | None = None
    select_on: str = "test"
    protocol: str = "faithful"
    max_history: int = 20
    grid_lambda2: tuple | None = None
    scalarization: str = "separate"

    def __post_init__(self):
        if self.protocol not in ("faithful", "clean"):
            raise ValueError(f"protocol must be 'faithful' or 'clean', got {self.protocol!r}")
        if self.select_on not in ("test", "val"):
            raise ValueError(f"select_on must be 'test' or 'val', got {self.select_on!r}")
        weights = self.grid_weights
        if len(weights) < 2 or not all(0 <= w <= 1 for w in weights):
            raise ValueError("grid_lambda2 needs at least two values in [0, 1]")
        self.config((1.0, 0.0))  # validates the run settings before any training

    @property
    def grid_weights(self):
        return list(ORIGINAL_GRID if self.grid_lambda2 is None else self.grid_lambda2)

    @property
    def filter(self):
        return ("original", False) if self.protocol == "faithful" else ("convex", True)

    def config(self, weights, epochs=None, seed=None):
        return weighted_sum_run(weights[1], lambda1=weights[0], epochs=epochs or self.epochs,
                                seed=self.seed if seed is None else seed, learning_rate=self.learning_rate,
                                train_subset=self.train_subset,
                                validation_size=10_000 if self.select_on == "val" else 0,
                                scalarization=self.scalarization)

    def run(self, weights, epochs=None, seed=None, recompute=False):
        return run_experiment(self.config(weights, epochs, seed), recompute=recompute, progress=False)

    def evaluate(self, weights, recompute=False):
        result = self.run(weights, recompute=recompute)
        return {"point": (result.history[f"{self.select_on}_ce"][-1], result.summary["l1_dense"]), "result": result}

    def search(self, method, recompute=False):
        """Run one search (``SEARCH_METHODS``) and return its ``pareto.SearchResult``."""
        evaluate = functools.partial(self.evaluate, recompute=recompute)
        filter_method, filter_last = self.filter
        if method == "bisection":
            return pareto.bisection_search(evaluate, max_history=self.max_history, filter_method=filter_method,
                                           filter_last=filter_last)
        if method in ("dichotomic", "stochastic"):
            return pareto.dichotomic_search(evaluate, stochastic=method == "stochastic", seed=self.seed,
                                            max_history=self.max_history, filter_method=filter_method,
                                            filter_last=filter_last)
        if method == "grid":  # paretofront.py: its 26 weightings, the first 26 of notebook 04's grid
            return pareto.grid_search(evaluate, [(1.0 - w, w) for w in self.grid_weights], filter_method=filter_method)
        raise ValueError(f"unknown search method {method!r}; choose from {', '.join(SEARCH_METHODS)}")

    def knees(self, found, knee_epochs=30, recompute=False):
        """Each search's knee by both rules, retrained for ``knee_epochs``: (table, runs by (method, rule))."""
        import pandas as pd

        rows, runs = [], {}
        for method, result in found.items():
            for rule, pick in pareto.pick_knees(result.candidates).items():
                knee = self.run(pick.weights, epochs=knee_epochs, recompute=recompute)
                runs[(method, rule)] = knee
                rows.append({"method": method, "rule": rule, "scalarization": self.scalarization,
                             "runs": len(result.history), "distinct_weightings": len({c.weights for c in result.history}),
                             "lambda1": pick.weights[0], "lambda2": pick.weights[1],
                             "test_ce": knee.summary["test_ce"], "l1_dense": knee.summary["l1_dense"],
                             "nnz_dense": knee.summary["nnz_dense"], "test_acc": knee.summary["test_acc"]})
        return pd.DataFrame(rows), runs

    def knee_seeds(self, knee_runs, seeds=(0, 1, 2), knee_epochs=30, recompute=False):
        """Every distinct clean-rule knee retrained from each seed: mean and sample std."""
        import pandas as pd

        clean = {}
        for (method, rule), run in knee_runs.items():
            if rule == "max-distance":
                clean.setdefault(tuple(run.config.weights), []).append(method)
        rows = []
        for weights, found_by in clean.items():
            runs = [self.run(weights, epochs=knee_epochs, seed=s, recompute=recompute) for s in seeds]
            acc, nnz, ce = (np.array([r.summary[k] for r in runs]) for k in ("test_acc", "nnz_dense", "test_ce"))
            std = (lambda v: v.std(ddof=1)) if len(runs) > 1 else (lambda v: float("nan"))
            rows.append({"methods": "+".join(found_by), "scalarization": self.scalarization, "lambda2": weights[1],
                         "seeds": len(runs), "test_acc_mean": acc.mean(), "test_acc_std": std(acc),
                         "test_ce_mean": ce.mean(), "test_ce_std": std(ce),
                         "nnz_dense_mean": nnz.mean(), "nnz_dense_std": std(nnz),
                         "pruned_mean": 1 - nnz.mean() / runs[0].summary["dense_weights"]})
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The learning-rate ablation of the min-norm methods (notebook 03): the paper's eta0 is unknown
# ---------------------------------------------------------------------------------------------

LR_ABLATION_RATES = {("smgd", "separate"): (3e-3, 1e-2, 3e-2, 1e-1),
                     ("madam", "separate"): (1e-4, 3e-4, 1e-3, 3e-3),
                     ("madam", "joint"): (1e-4, 3e-4, 1e-3, 3e-3)}


def lr_ablation(rates=None, seeds=(0,), epochs=30, train_subset=None, eval_train=True):
    """Configs of the eta0 ablation: min-norm + ITP on MNIST with the paper's schedule, every
    (optimizer, scalarization) at each of its rates (``rates`` maps (optimizer, scalarization) to
    rates; default ``LR_ABLATION_RATES``). The notebook-03 runs at the default rates are reused."""
    rates = LR_ABLATION_RATES if rates is None else rates
    configs = [RunConfig(dataset="mnist", optimizer=optimizer, scalarization=scalarization, itp=True,
                         epochs=epochs, seed=seed, learning_rate=float(lr), train_subset=train_subset,
                         eval_train=eval_train)
               for seed in seeds for (optimizer, scalarization), values in rates.items() for lr in values]
    return [c.resolved() for c in configs]


def lr_ablation_table(results):
    """One row per ablation run: ``optimizer, scalarization, learning_rate, seed, test_acc,
    pruned_fraction_dense``, nonzeros per dense layer, and the epoch-mean c2 (mean over epochs
    of each epoch's mean min-norm weight of the L1 objective) and its last-epoch value."""
    import pandas as pd

    rows = []
    for r in results:
        c2 = np.array([v for v in r.history["c2"][1:] if v is not None], dtype=float)
        rows.append({"optimizer": r.config.optimizer, "scalarization": r.config.scalarization,
                     "learning_rate": r.config.learning_rate, "seed": r.config.seed,
                     "test_acc": r.summary["test_acc"], "pruned_fraction_dense": r.summary["pruned_fraction_dense"],
                     "nnz_dense": r.summary["nnz_dense"],
                     **{k: v for k, v in r.summary.items() if k.startswith("nnz/")},
                     "c2_mean": float(c2.mean()), "c2_last_epoch": float(c2[-1])})
    return pd.DataFrame(rows).sort_values(["optimizer", "scalarization", "learning_rate", "seed"],
                                          ascending=[False, False, True, True]).reset_index(drop=True)


def closest_to_reference(table, accuracy=None, pruned=None):
    """Per (optimizer, scalarization), the learning rate whose seed-0 run is closest to the paper's
    MNIST reference lines (test accuracy 0.989, 95.6% of the dense weights pruned), by
    ``|pruned - 0.956| + 10 |accuracy - 0.989|`` (0.1 accuracy points weigh as 1 point of sparsity).
    Returns ``{(optimizer, scalarization): rate}``."""
    from .paper import MNIST_REFERENCE_ACCURACY, MNIST_REFERENCE_PRUNED_DENSE

    accuracy = MNIST_REFERENCE_ACCURACY if accuracy is None else accuracy
    pruned = MNIST_REFERENCE_PRUNED_DENSE if pruned is None else pruned
    first = table[table.seed == table.seed.min()]
    distance = (first.pruned_fraction_dense - pruned).abs() + 10 * (first.test_acc - accuracy).abs()
    best = first.assign(distance=distance).sort_values("distance").groupby(["optimizer", "scalarization"]).head(1)
    return {(row.optimizer, row.scalarization): row.learning_rate for row in best.itertuples()}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run (or resume) a sweep of the paper's experiments into the cache.")
    parser.add_argument("experiment", choices=["smgd", "grid", "ablation", "knees"])
    parser.add_argument("--methods", nargs="*", default=list(SEARCH_METHODS), help="knees: the searches to run")
    parser.add_argument("--select-on", default="test", choices=["test", "val"])
    parser.add_argument("--knee-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--optimizers", nargs="*")
    parser.add_argument("--itp", default="both", choices=list(ITP_CHOICES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--protocol", default="faithful")
    parser.add_argument("--scalarization", default="separate", choices=["separate", "joint"])
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th config starting at i (one per process)")
    args = parser.parse_args(argv)
    if args.experiment == "smgd":
        configs = smgd_comparison(args.dataset, args.optimizers, args.itp, args.epochs, tuple(args.seeds),
                                  train_subset=args.train_subset, protocol=args.protocol)
    elif args.experiment == "ablation":  # every rate on the first seed, then the closest rates on every seed
        first = run_sweep(lr_ablation(seeds=tuple(args.seeds[:1]), epochs=args.epochs or 30,
                                      train_subset=args.train_subset))
        best = {key: (rate,) for key, rate in closest_to_reference(lr_ablation_table(first)).items()}
        configs = lr_ablation(best, seeds=tuple(args.seeds), epochs=args.epochs or 30, train_subset=args.train_subset)
    elif args.experiment == "knees":  # whole searches, then their knees: one process per search
        search = KneeSearch(seed=args.seeds[0], train_subset=args.train_subset, select_on=args.select_on,
                            protocol=args.protocol, scalarization=args.scalarization)
        found = {method: search.search(method) for method in args.methods}
        _, knee_runs = search.knees(found)
        search.knee_seeds(knee_runs, seeds=tuple(args.knee_seeds))
        return
    else:
        configs = weighted_sum_grid(seed=args.seeds[0], train_subset=args.train_subset, protocol=args.protocol,
                                    scalarization=args.scalarization)
    index, count = (int(v) for v in args.shard.split("/"))
    run_sweep(configs[index::count])



# ---------------------------------------------------------------------------------------------
# Classic post-training pruning (notebook 06, seed 002)
# ---------------------------------------------------------------------------------------------

SEED002_KS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


def trained_model(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None,
                  model_kwargs=None, recompute=False, progress=True, optimizer="adam", data_kwargs=None):
    """Train a network (Adam, or SGD with momentum 0.9) on sparse cross-entropy, or load its
    cached weights.

    Weights are cached under ``results/cache/models`` (ignored by git: models are not committed)
    by a hash of the arguments; returns ``(model, data)``.
    """
    import keras

    from . import data as data_lib
    from .cache import atomic_write, config_hash, default_cache_dir, quarantine
    from .models import MODELS, build_model
    from .runner import RunFailedError, non_finite_reason

    checked = check_parameters(
        dict(model_name=model_name, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
             train_subset=train_subset, recompute=recompute, progress=progress, optimizer=optimizer),
        dict(model_name=Choice(*MODELS), epochs=Int(1), batch_size=Int(1), learning_rate=Float(0.0, min_open=True),
             seed=Int(0), train_subset=Optional(Int(1)), recompute=Bool(), progress=Bool(),
             optimizer=Choice("adam", "sgd")))
    dataset = data_lib.check_dataset_name(dataset)
    for name, value in (("model_kwargs", model_kwargs), ("data_kwargs", data_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be None or a dict, got {value!r} ({type(value).__name__})")
    validation_size = (data_kwargs or {}).get("validation_size", 0)
    available = data_lib.TRAIN_SIZES[dataset] - check_int("data_kwargs['validation_size']", validation_size, 0)
    if train_subset is not None and train_subset > available:
        raise ValueError(f"train_subset must be <= the {available} training images of {dataset}, got {train_subset}")
    if batch_size > (train_subset or available):
        raise ValueError(f"batch_size must be <= the {train_subset or available} training images, got {batch_size}")
    del checked  # the cache key hashes the arguments as given, as it always has
    config = dict(model=model_name, dataset=dataset, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, train_subset=train_subset, model_kwargs=model_kwargs or {})
    if optimizer != "adam" or data_kwargs:  # keeps the keys of existing Adam caches unchanged
        config.update(optimizer=optimizer, data_kwargs=data_kwargs or {})
    path = default_cache_dir() / "models" / f"{model_name}-{dataset}-{config_hash(config)}.weights.h5"
    data = data_lib.load_dataset(dataset, train_subset=train_subset, seed=seed, **(data_kwargs or {}))
    model = build_model(model_name, seed=seed, **(model_kwargs or {}))
    opt = (keras.optimizers.Adam(learning_rate) if optimizer == "adam"
           else keras.optimizers.SGD(learning_rate, momentum=0.9))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if path.exists() and not recompute:
        import warnings

        try:
            with warnings.catch_warnings():  # the compiled optimizer's slots are not needed: no warning
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(path)
            return model, data
        except Exception as exc:  # a truncated or foreign weights file: moved aside, trained again
            quarantine(path, f"{type(exc).__name__}: {exc}")
            model = build_model(model_name, seed=seed, **(model_kwargs or {}))
            model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    check_writable(path.parent, "model cache folder")  # before training, not after
    keras.utils.set_random_seed(seed)
    fit = model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, verbose=2 if progress else 0)
    reason = non_finite_reason(model, {"loss": fit.history["loss"][-1]})
    if reason:  # a diverged network is never cached (nor returned)
        raise RunFailedError(f"{model_name}-{dataset}", reason, epochs)
    # A unique temporary name per call: concurrent identical calls each write their own file
    # and the last rename wins (they hold the same weights).
    atomic_write(path, model.save_weights, suffix=".weights.h5")
    return model, data


def post_training_sweep(model, data, ks=SEED002_KS, finetune_epochs=1, batch_size=128, prune_bias=True,
                        progress=True):
    """Seed 002's experiment and beyond: for every k, prune a copy of the trained ``model`` and
    evaluate it on the test set.

    methods x variants: ``weight`` (per-layer magnitude; ``prune_bias`` = the seed's bias quirk)
    and ``unit`` (column L2 norm), each ``one-shot`` (the seed), ``fine-tuned`` (masks kept,
    ``finetune_epochs`` of Adam) and ``global`` (one threshold over all hidden layers; for
    ``unit`` the units are ranked across layers by their norm). The output layer is never pruned.
    Returns a list of rows ``dataset, method, variant, k, nominal_sparsity, effective_sparsity,
    test_acc, test_loss``.
    """
    import keras
    from .progress import tqdm

    from . import pruning

    checked = check_parameters(dict(ks=ks, finetune_epochs=finetune_epochs, batch_size=batch_size,
                                    prune_bias=prune_bias, progress=progress),
                               dict(ks=List(Fraction()), finetune_epochs=Int(0), batch_size=Int(1), prune_bias=Bool(),
                                    progress=Bool()))
    ks = checked["ks"]
    trained = model.get_weights()
    optimizer_config = model.optimizer.get_config() if model.optimizer else None
    rows = []
    jobs = [(method, variant, k) for method in ("weight", "unit") for variant in ("one-shot", "fine-tuned", "global")
            for k in ks]
    for method, variant, k in tqdm(jobs, desc=f"{data.name} sweep", disable=not progress, leave=False):
        model.set_weights(trained)
        pruning.detach_masks(model)
        masks = post_training_masks(model, method, variant, k, prune_bias)
        if variant == "fine-tuned" and k > 0:
            pruning.attach_masks(model, masks)
            model.compile(optimizer=keras.optimizers.Adam.from_config(optimizer_config) if optimizer_config
                          else "adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=finetune_epochs, verbose=0)
        else:
            pruning.apply_masks(model, masks)
        loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
        rows.append({"dataset": data.name, "method": method, "variant": variant, "k": k,
                     "nominal_sparsity": pruning.sparsity(model, include_output=False)["total"],
                     "effective_sparsity": pruning.effective_sparsity(model),
                     "test_acc": float(accuracy), "test_loss": float(loss)})
    model.set_weights(trained)
    pruning.detach_masks(model)
    return rows


class PostTraining:
    """Notebook 06's procedure: the trained MLP per dataset (trained, or loaded from the model
    cache, only when a result needs it), its cached pruning sweep and the cached compaction timing.
    The cache keys are the configurations the notebook has always used."""

    def __init__(self, epochs, batch_size, learning_rate, seed=0, train_subset=None, recompute=False):
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.seed, self.train_subset, self.recompute = seed, train_subset, recompute
        self._trained = {}

    def pretrained(self, name):
        """``(model, data)`` of the MLP trained on dataset ``name``."""
        if name not in self._trained:
            self._trained[name] = trained_model("mlp", name, self.epochs, self.batch_size, self.learning_rate,
                                                seed=self.seed, train_subset=self.train_subset,
                                                recompute=self.recompute)
        return self._trained[name]

    def _config(self, **more):
        return dict(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                    seed=self.seed, train_subset=self.train_subset, **more)

    def sweep(self, datasets, ks=SEED002_KS, finetune_epochs=1, prune_bias=True):
        """``(rows of every dataset, {dataset: from the cache?})`` of ``post_training_sweep``."""
        from .cache import cached

        rows, hits = [], {}
        for name in datasets:
            config = dict(dataset=name, **self._config(ks=list(ks), finetune_epochs=finetune_epochs,
                                                        prune_bias=prune_bias))
            part, hits[name] = cached("post_training_sweep", config, lambda: post_training_sweep(
                *self.pretrained(name), ks, finetune_epochs, self.batch_size, prune_bias), recompute=self.recompute)
            rows += part
        return rows, hits

    def compaction_timing(self, datasets, compact_ks, latency_repeats=30):
        """``(rows, from the cache?)``: unit-pruned networks at each k compacted, timed and compared."""
        from .cache import cached

        config = dict(datasets=list(datasets), **self._config(compact_ks=list(compact_ks),
                                                               latency_repeats=latency_repeats))
        return cached("compaction_timing", config, lambda: [
            row for name in datasets for row in compaction_rows(*self.pretrained(name), compact_ks, latency_repeats)],
            recompute=self.recompute)


def compaction_rows(model, data, compact_ks, latency_repeats=30):
    """Per k in ``[0, *compact_ks]``: one-shot unit pruning, compaction, and the compact network's
    size, FLOPs, latency (batch 1 and 1024), gzip size, accuracy and largest output difference."""
    import tempfile

    from . import pruning
    from .pruning import costs

    rows, trained, dense_flops = [], model.get_weights(), costs.flops(model)
    with tempfile.TemporaryDirectory() as tmp:
        for k in [0.0, *compact_ks]:
            model.set_weights(trained)
            pruning.apply_masks(model, post_training_masks(model, "unit", "one-shot", k))
            small, _ = pruning.compact(model) if k > 0 else (model, None)
            x = data.x_test[:1024]
            max_diff = float(np.abs(small.predict_on_batch(x) - model.predict_on_batch(x)).max())
            acc = float(np.mean(np.argmax(small.predict_on_batch(data.x_test), axis=1) == data.y_test))
            rows.append({"dataset": data.name, "k": k, "params": small.count_params(),
                         "flop_ratio": costs.flops(small) / dense_flops,
                         "latency_b1_ms": 1e3 * costs.latency(small, 1, latency_repeats),
                         "latency_b1024_ms": 1e3 * costs.latency(small, 1024, latency_repeats),
                         "gzip_kb": costs.saved_size(small, f"{tmp}/m.keras") / 1024,
                         "test_acc": acc, "max_abs_diff_vs_masked": max_diff})
    model.set_weights(trained)
    return rows


def post_training_masks(model, method, variant, k, prune_bias=True):
    """Notebook 06's masks: ``weight`` (per-layer magnitude, ``prune_bias`` = seed 002's bias
    quirk) or ``unit`` (L2 norm of a unit's incoming weights), per layer or ``global`` (units
    ranked across layers by their norm over sqrt(fan-in)); the output layer is never pruned."""
    from .pruning import masks_for, output_layer

    granularity = "weight" if method == "weight" else "unit"
    scope = "global" if variant == "global" else "layer"
    return masks_for(model, k, importance="l2" if method == "unit" else "magnitude", granularity=granularity,
                     scope=scope, ignored_layers=[output_layer(model)],
                     include_bias=prune_bias and method == "weight" and scope == "layer",
                     normalize="fan_in" if granularity == "unit" and scope == "global" else None)


# ---------------------------------------------------------------------------------------------
# Structured, global and iterative pruning of the CIFAR CNN (notebook 07, seed 003)
# ---------------------------------------------------------------------------------------------

SEED003_TARGETS = (0.1, 0.3, 0.5, 0.6, 0.7, 0.9)
STRUCTURE_METHODS = ("l1_unstructured", "l2_structured", "global_unstructured")


def per_layer_sparsity(model, target, methods=STRUCTURE_METHODS):
    """Notebook 07: per-layer sparsity of each one-shot method at ``target`` (weights restored)."""
    from . import pruning

    weights, table = model.get_weights(), {}
    for method in methods:
        pruning.apply_masks(model, structure_masks(model, method, target))
        table[method.replace("_", " ")] = {k: v for k, v in pruning.sparsity(model).items() if k != "total"}
        model.set_weights(weights)
    return table


def structure_masks(model, method, target):
    """Seed 003's three methods. Unstructured ones prune every conv and linear layer, the output
    layer included (the seed's case (c)); structured pruning removes filters/units of every
    layer but the output one (its 10 classes must stay)."""
    from .pruning import masks_for, output_layer

    if method == "l1_unstructured":
        return masks_for(model, target)
    if method == "l2_structured":
        return masks_for(model, target, importance="l2", granularity="filter", ignored_layers=[output_layer(model)])
    if method == "global_unstructured":
        return masks_for(model, target, scope="global")
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(STRUCTURE_METHODS)}")


def structure_sweep(model, data, targets=SEED003_TARGETS, methods=STRUCTURE_METHODS, retrain_epochs=1,
                    gmp_epochs=2, batch_size=32, learning_rate=1e-3, latency_batch=256, latency_repeats=10,
                    progress=True):
    """Notebook 07's experiment: every method one-shot (prune, no retraining) and iterative
    (prune to each target in turn, retraining ``retrain_epochs`` after each step), plus gradual
    magnitude pruning (per layer, polynomial schedule over ``gmp_epochs`` of fine-tuning) to each
    target. Structured networks are compacted before timing. Returns rows with
    ``method, schedule, target_sparsity, achieved_sparsity, test_acc, params, flops, latency_ms``.
    """
    import keras
    from .progress import tqdm

    from . import pruning
    from .pruning import compact, costs

    checked = check_parameters(
        dict(targets=targets, methods=methods, retrain_epochs=retrain_epochs, gmp_epochs=gmp_epochs,
             batch_size=batch_size, learning_rate=learning_rate, latency_batch=latency_batch,
             latency_repeats=latency_repeats, progress=progress),
        dict(targets=List(Fraction()), methods=List(Choice(*STRUCTURE_METHODS), unique=True), retrain_epochs=Int(0),
             gmp_epochs=Int(1), batch_size=Int(1), learning_rate=Float(0.0, min_open=True), latency_batch=Int(1),
             latency_repeats=Int(1), progress=Bool()))
    targets, methods = checked["targets"], checked["methods"]
    trained = model.get_weights()
    dense_flops = costs.flops(model)

    def recompile():
        model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def row(method, schedule, target):
        _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
        timed = compact(model)[0] if method == "l2_structured" else model
        return {"method": method, "schedule": schedule, "target_sparsity": target,
                "achieved_sparsity": pruning.sparsity(model, include_output=True)["total"],
                "test_acc": float(accuracy), "params": costs.parameters(timed),
                "flop_ratio": costs.flops(timed, nonzero_only=method != "l2_structured") / dense_flops,
                "latency_ms": 1e3 * costs.latency(timed, latency_batch, latency_repeats)}

    def reset():
        pruning.detach_masks(model)
        model.set_weights(trained)
        recompile()

    rows = []
    total = len(methods) * 2 * len(targets) + len(targets)
    bar = tqdm(total=total, desc="structure sweep", disable=not progress, leave=False)
    reset()
    rows.append(row("dense", "none", 0.0))
    for method in methods:
        def make_masks(m, target, method=method):
            return structure_masks(m, method, target)

        def retrain(m, target, method=method):
            m.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=retrain_epochs, verbose=0)
            rows.append(row(method, "iterative", target))
            bar.update(1)

        for target in targets:  # one-shot, from the trained weights each time
            reset()
            pruning.one_shot(model, make_masks, target)
            rows.append(row(method, "one-shot", target))
            bar.update(1)
        reset()  # iterative: each step prunes the retrained network further
        pruning.iterative_pruning(model, make_masks, sorted(targets), retrain)
    steps_per_epoch = -(-len(data.x_train) // batch_size)
    for target in targets:
        reset()
        gmp = pruning.GradualMagnitudePruning(model, final_sparsity=target, include_output=True,
                                              end_step=max(1, int(0.75 * gmp_epochs * steps_per_epoch)),
                                              frequency=max(1, steps_per_epoch // 10))
        model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=gmp_epochs, verbose=0, callbacks=[gmp])
        rows.append(row("gmp", "gradual", target))
        bar.update(1)
    bar.close()
    reset()
    return rows


# ---------------------------------------------------------------------------------------------
# Budget-constrained pruning of LeNet-5 and the VGG (notebook 08, seed 004)
# ---------------------------------------------------------------------------------------------

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

    from .pruning import attach_masks, detach_masks

    epochs = check_int("epochs", epochs, minimum=0)
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
    from .budget import LagrangianPolicyGradient, LayerwisePruningEnv, search
    from .pruning.costs import COST_KINDS

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
        eval_size=Int(1), updates=Int(1), episodes_per_update=Int(2), seed=Int(0), finetune_epochs=Int(0),
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
        self.pretrain, self.search, self.methods = pretrain, search, list(methods)
        self.validation_size, self.eval_size, self.episodes_per_update = validation_size, eval_size, episodes_per_update
        self.finetune_epochs, self.seed, self.recompute = finetune_epochs, seed, recompute
        self._trained = {}

    def check_budget(self, kind, value):
        from .pruning.costs import COST_KINDS

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
        from .pruning.costs import make_cost

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
        from .cache import cached

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


if __name__ == "__main__":
    main()

"""Notebook 03: the optimizer comparison (SMGD, MAdam, MRMSprop against their Keras baselines,
REPRODUCTION_NOTES.md §6.1) and the learning-rate ablation of the min-norm methods (the paper's
eta0 is unknown).
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd

from ..data import check_dataset_name
from ..paper import MNIST_REFERENCE_ACCURACY, MNIST_REFERENCE_NONZEROS, MNIST_REFERENCE_PRUNED_DENSE
from ..plotting import format_mean_std, method_label
from ..run_config import OPTIMIZERS, RunConfig
from ..runner import DEFAULT_BACKEND
from ..sweep import run_sweep, summary_frame
from ..validation import Choice, Dict, Epochs, Float, List, Optional, Seed, validated

# The optimizer comparison of REPRODUCTION_NOTES.md §6.1: multi-objective methods and their Keras baselines.
PAPER_OPTIMIZERS = {"mnist": ("smgd", "madam", "sgd", "adam"),
                    "cifar10": ("smgd", "mrmsprop", "sgd", "rmsprop")}
PAPER_EPOCHS = {"mnist": 30, "cifar10": 125}
ITP_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}


@validated(optimizers=Optional(List(Choice(*OPTIMIZERS), unique=True)), itp=Choice(*ITP_CHOICES), epochs=Optional(Epochs()),
           seeds=List(Seed(), unique=True), learning_rates=Optional(Dict(Choice(*OPTIMIZERS), Float(0.0, min_open=True))))
def smgd_comparison(dataset="mnist", optimizers=None, itp="both", epochs=None, seeds=(0,),
                    learning_rates=None, batch_size=None, train_subset=None, protocol="faithful",
                    eval_train=True):
    """Configs of notebook 03: every (optimizer, itp, seed), in seed-major order so that an
    interrupted sweep has finished whole seeds first.

    ``learning_rates`` maps optimizer -> eta0 (per-optimizer rates, REPRODUCTION_NOTES.md, B6); missing ones
    take the protocol default.
    """

    dataset = check_dataset_name(dataset)
    if dataset not in PAPER_OPTIMIZERS and optimizers is None:
        raise ValueError(f"dataset {dataset!r} has no paper optimizers; choose one of {', '.join(PAPER_OPTIMIZERS)} "
                         "or pass optimizers")
    optimizers = tuple(optimizers or PAPER_OPTIMIZERS[dataset])
    learning_rates = dict(learning_rates or {})
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
SUMMARY_TAIL = ["learning_rate", "batch_size", "train_subset", "protocol", "train_seconds", "backend"]


def backend_label(results):
    """The Keras backend(s) that made ``results``, for notebook 03's protocol label: ``"Keras
    backend tensorflow"``, or with several ``"Keras backends tensorflow (6 runs), jax (2 runs)"``.
    A run's backend is provenance (``RunResult.backend``), not part of its cache key, so a sweep can
    mix runs made on a GPU under JAX with runs made here under TensorFlow."""

    counts = Counter(getattr(r, "backend", DEFAULT_BACKEND) for r in results)
    if len(counts) <= 1:
        return f"Keras backend {next(iter(counts), 'none (no runs)')}"
    return "Keras backends " + ", ".join(f"{name} ({n} run{'s' * (n != 1)})" for name, n in sorted(counts.items()))


def comparison_summary(results):
    """Notebook 03's ``<dataset>_summary.csv``: one row per run, nonzeros and pruned fractions per
    dense layer included."""

    summary = summary_frame(results)
    per_layer = [c for c in summary.columns if c.startswith("nnz/")] + \
        [c for c in summary.columns if c.startswith("pruned_fraction/")]
    return summary[SUMMARY_COLUMNS + per_layer + SUMMARY_TAIL]


def comparison_table(summary):
    """Mean ± sample std over seeds per (optimizer, itp) of notebook 03's summary ("± –" where
    there is one seed: no spread was measured, which is not a spread of 0)."""

    def mean_std(frame, column, digits):
        g = frame.groupby(["optimizer", "itp"], sort=False)[column].agg(["mean", "std"])
        return g.apply(lambda r: format_mean_std(r["mean"], r["std"], digits), axis=1)

    return pd.DataFrame({
        "test acc": mean_std(summary, "test_acc", 4),
        "test CE": mean_std(summary, "test_ce", 4),
        "dense pruned %": mean_std(summary.assign(p=100 * summary.pruned_fraction_dense), "p", 1),
        **{f"{c.split('/')[1]} pruned %": mean_std(summary.assign(p=100 * summary[c]), "p", 1)
           for c in summary.columns if c.startswith("pruned_fraction/")},
        "runs": summary.groupby(["optimizer", "itp"], sort=False).size(),
    })


# The learning-rate ablation of the min-norm methods: the paper's eta0 is unknown.

# The second rates of SMGD (4e-3 ... 8e-3) and of joint MAdam (1.5e-3 ... 5e-3) fill the intervals in
# which the first ones jump from the empty network to a partly pruned one.
LR_ABLATION_RATES = {("smgd", "separate"): (3e-3, 4e-3, 5e-3, 6e-3, 8e-3, 1e-2, 3e-2, 1e-1),
                     ("madam", "separate"): (1e-4, 3e-4, 1e-3, 3e-3),
                     ("madam", "joint"): (1e-4, 3e-4, 1e-3, 1.5e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3)}


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


def lr_ablation_followup(first, seeds, epochs=30, train_subset=None):
    """The ablation's second stage: from ``first`` (the results of the first stage, every rate on
    one seed), the rate of each (optimizer, scalarization) closest to the paper's reference lines,
    and the configs that run it on ``seeds``: ``(closest, configs)``."""
    closest = closest_to_reference(lr_ablation_table(first))
    return closest, lr_ablation({key: (rate,) for key, rate in closest.items()}, seeds=tuple(seeds), epochs=epochs,
                                train_subset=train_subset)


def _ablation_row(result):
    """One row of the ablation tables (``lr_ablation_table``, ``shared_lr_table``); the c2 columns
    are NaN for single-objective baselines, which record no min-norm weights."""
    c2 = np.array([v for v in result.history.get("c2", [None])[1:] if v is not None], dtype=float)
    return {"optimizer": result.config.optimizer, "scalarization": result.config.scalarization,
            "learning_rate": result.config.learning_rate, "seed": result.config.seed,
            "test_acc": result.summary["test_acc"], "pruned_fraction_dense": result.summary["pruned_fraction_dense"],
            "nnz_dense": result.summary["nnz_dense"],
            **{k: v for k, v in result.summary.items() if k.startswith("nnz/")},
            "c2_mean": float(c2.mean()) if c2.size else float("nan"),
            "c2_last_epoch": float(c2[-1]) if c2.size else float("nan")}


ABLATION_COLUMNS = ["optimizer", "scalarization", "learning_rate", "seed", "test_acc", "pruned_fraction_dense",
                    "nnz_dense", "c2_mean", "c2_last_epoch"]  # plus nnz/<layer> after nnz_dense


def _columns(rows, first=()):
    nnz = sorted({k for row in rows for k in row if k.startswith("nnz/")})
    base = ABLATION_COLUMNS[:7] + nnz + ABLATION_COLUMNS[7:]
    return list(first) + [c for c in base if c not in first]


def lr_ablation_table(results):
    """One row per ablation run: ``optimizer, scalarization, learning_rate, seed, test_acc,
    pruned_fraction_dense``, nonzeros per dense layer, and the epoch-mean c2 (mean over epochs
    of each epoch's mean min-norm weight of the L1 objective) and its last-epoch value."""

    rows = [_ablation_row(r) for r in results]
    return pd.DataFrame(rows, columns=_columns(rows)).sort_values(
        ["optimizer", "scalarization", "learning_rate", "seed"],
        ascending=[False, False, True, True]).reset_index(drop=True)


# The original script uses one eta0 for all four optimizers of a figure (REPRODUCTION_NOTES.md, B6;
# its figures are named Acc_mnist-LR-{lr}-...): the two rates of our defaults, shared.
SHARED_LEARNING_RATES = (1e-3, 1e-2)


@validated(lrs=List(Float(0.0, min_open=True), unique=True))
def shared_lr_comparison(lrs=SHARED_LEARNING_RATES, dataset="mnist", itp="on", seeds=(0,), epochs=None,
                         train_subset=None):
    """Configs of the figures the original code drew: the paper's four optimizers of ``dataset``
    (``smgd_comparison``, ITP on by default) at one shared eta0 per figure, for each rate in ``lrs``."""
    configs = []
    for lr in lrs:
        configs += smgd_comparison(dataset, itp=itp, epochs=epochs, seeds=seeds, train_subset=train_subset,
                                   learning_rates={o: float(lr) for o in PAPER_OPTIMIZERS[dataset]})
    return configs


def cached_runs(configs):
    """``(results, missing)``: the cached results of ``configs`` and the configs not cached yet.
    Trains nothing (``run_sweep(..., cached_only=True)``), also when none is cached."""

    configs = list(configs)
    try:
        results = run_sweep(configs, cached_only=True) if configs else []
    except LookupError:  # none of them is cached
        results = []
    done = {r.config for r in results}
    return results, [c for c in configs if c not in done]


def shared_lr_table(results):
    """The shared-eta0 runs (``shared_lr_comparison``) as rows with ``lr_ablation_table``'s columns
    plus ``shared_lr`` (first): the eta0 all optimizers of that figure share. Rows in order of
    ``shared_lr``, then the paper's optimizer order, then seed."""

    rows = [{**_ablation_row(r), "shared_lr": r.config.learning_rate} for r in results]
    frame = pd.DataFrame(rows, columns=_columns(rows, first=("shared_lr",)))
    order = {o: i for i, o in enumerate(dict.fromkeys(PAPER_OPTIMIZERS["mnist"] + PAPER_OPTIMIZERS["cifar10"]))}
    return (frame.assign(_order=frame.optimizer.map(order)).sort_values(["shared_lr", "_order", "seed"])
            .drop(columns="_order").reset_index(drop=True))


def reference_crossings(results, references=None):
    """Per run, the first epoch at which each dense layer's nonzero weights fall below the paper's
    reference line (``paper.MNIST_REFERENCE_NONZEROS``: 2,107 / 300 / 170), read from the run's
    per-epoch ``history["nnz"]`` (epoch 0: the network before training, after ITP's initial prune);
    None where it never does. ``epoch_below/all``: the first epoch at which all layers are below
    together. Runs with the same config are listed once. Also the run's final ``nnz_dense`` and
    ``test_acc``, so that runs crossing on their way to the empty network can be told apart."""

    references = dict(MNIST_REFERENCE_NONZEROS if references is None else references)
    rows, seen = [], set()
    for r in results:
        if r.config in seen:
            continue
        seen.add(r.config)
        epochs = list(r.history["epoch"])
        below = {layer: [int(n) < limit for n in r.history["nnz"][layer]] for layer, limit in references.items()}

        def first(flags):
            return next((int(e) for e, flag in zip(epochs, flags) if flag), None)

        rows.append({"optimizer": r.config.optimizer, "scalarization": r.config.scalarization,
                     "learning_rate": r.config.learning_rate, "seed": r.config.seed, "itp": r.config.itp,
                     "epochs": epochs[-1],
                     **{f"epoch_below/{layer}": first(flags) for layer, flags in below.items()},
                     "epoch_below/all": first([all(v) for v in zip(*below.values())]),
                     "nnz_dense": r.summary["nnz_dense"], "test_acc": r.summary["test_acc"]})
    columns = ["optimizer", "scalarization", "learning_rate", "seed", "itp", "epochs",
               *[f"epoch_below/{layer}" for layer in references], "epoch_below/all", "nnz_dense", "test_acc"]
    frame = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c.startswith("epoch_below/"):
            frame[c] = frame[c].astype("Int64")  # None stays missing, epochs stay integers
    return frame


def collapse_transitions(table):
    """Per (optimizer, scalarization) of an ablation table (seed-0 rows), the step to the empty
    network: the largest rate whose run ends with no dense weight and the next rate tried above it,
    with that run's pruned fraction and accuracy, and their ratio. Only groups with an empty run."""

    rows = []
    first = table[table.seed == table.seed.min()] if len(table) else table
    for (optimizer, scalarization), g in first.groupby(["optimizer", "scalarization"], sort=False):
        g = g.sort_values("learning_rate")
        empty = g[g.nnz_dense == 0]
        if empty.empty:
            continue
        last_empty = empty.learning_rate.max()
        above = g[(g.learning_rate > last_empty) & (g.nnz_dense > 0)]
        nxt = above.iloc[0] if len(above) else None
        rows.append({"optimizer": optimizer, "scalarization": scalarization, "empty_up_to": last_empty,
                     "empty_test_acc": float(empty[empty.learning_rate == last_empty].test_acc.iloc[0]),
                     "next_rate": None if nxt is None else nxt.learning_rate,
                     "next_pruned_fraction": None if nxt is None else nxt.pruned_fraction_dense,
                     "next_test_acc": None if nxt is None else nxt.test_acc,
                     "rate_ratio": None if nxt is None else nxt.learning_rate / last_empty})
    return pd.DataFrame(rows, columns=["optimizer", "scalarization", "empty_up_to", "empty_test_acc", "next_rate",
                                       "next_pruned_fraction", "next_test_acc", "rate_ratio"])


def closest_to_reference(table, accuracy=None, pruned=None):
    """Per (optimizer, scalarization), the learning rate whose seed-0 run is closest to the paper's
    MNIST reference lines (test accuracy 0.989, 95.6% of the dense weights pruned), by
    ``|pruned - 0.956| + 10 |accuracy - 0.989|`` (0.1 accuracy points weigh as 1 point of sparsity).
    Returns ``{(optimizer, scalarization): rate}``."""

    accuracy = MNIST_REFERENCE_ACCURACY if accuracy is None else accuracy
    pruned = MNIST_REFERENCE_PRUNED_DENSE if pruned is None else pruned
    first = table[table.seed == table.seed.min()]
    distance = (first.pruned_fraction_dense - pruned).abs() + 10 * (first.test_acc - accuracy).abs()
    best = first.assign(distance=distance).sort_values("distance").groupby(["optimizer", "scalarization"]).head(1)
    return {(row.optimizer, row.scalarization): row.learning_rate for row in best.itertuples()}


def _rate(value):
    return f"{value:.1e}".replace("e-0", "e-").replace(".0e", "e")


def lr_ablation_findings(ablation, shared=None, crossings=None, accuracy=None, pruned=None):
    """The answer of notebook 03 to the learning-rate question, as markdown built from the tables
    (``lr_ablation_table``, ``shared_lr_table``, ``reference_crossings``; pass them as read from the
    CSVs): is the paper's reference (``pruned`` of the dense weights at test accuracy ``accuracy``,
    default 95.6% at 0.989) reached by any min-norm run, how sharp the step to the empty network
    is, and which runs cross the nonzero reference lines, at which epoch."""

    accuracy = MNIST_REFERENCE_ACCURACY if accuracy is None else accuracy
    pruned = MNIST_REFERENCE_PRUNED_DENSE if pruned is None else pruned
    lines = []
    frames = [ablation] + ([shared[shared.optimizer.isin(ablation.optimizer.unique())]] if shared is not None else [])

    minnorm = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else ablation
    minnorm = minnorm.drop_duplicates(["optimizer", "scalarization", "learning_rate", "seed"])  # shared = ablation run
    if not len(minnorm):
        return "No ablation run is cached yet: nothing to report."
    reached = minnorm[(minnorm.pruned_fraction_dense >= pruned) & (minnorm.test_acc >= accuracy)]
    rates = {k: sorted(set(g.learning_rate)) for k, g in minnorm.groupby(["optimizer", "scalarization"], sort=False)}
    head = (f"**Is {100 * pruned:.1f}% pruned at test accuracy {accuracy} reachable?** "
            + ("Yes: " + "; ".join(f"{method_label(r.optimizer, r.scalarization)} at η0 = {_rate(r.learning_rate)}, seed {r.seed}: "
                                   f"{100 * r.pruned_fraction_dense:.1f}% at {r.test_acc:.4f}" for r in reached.itertuples())
               if len(reached) else
               f"Not at any rate tried ({len(minnorm)} min-norm runs, shared-η0 runs included). The most pruned "
               "run of each method that does not empty the network:"))
    lines.append(head)
    for (optimizer, scalarization), tried in rates.items():
        g = minnorm[(minnorm.optimizer == optimizer) & (minnorm.scalarization == scalarization)]
        alive = g[g.nnz_dense > 0]
        tried_text = ", ".join(_rate(v) for v in tried)
        if alive.empty:
            lines.append(f"- {method_label(optimizer, scalarization)} (η0 {tried_text}): every run empties the network.")
            continue
        best = alive.sort_values("pruned_fraction_dense").iloc[-1]
        per_rate = alive.groupby("learning_rate").pruned_fraction_dense.mean().sort_index()
        edge = ""
        if best.learning_rate == max(tried) and len(per_rate) > 1 and per_rate.iloc[-1] > per_rate.iloc[-2]:
            edge = " (the largest rate tried: pruning still rises with η0 there)"
        elif best.learning_rate == per_rate.index[0] and (g.nnz_dense == 0).any():
            edge = " (the smallest rate that does not empty the network)"
        seeds = g[g.learning_rate == best.learning_rate]
        spread = (f"; seeds {', '.join(map(str, sorted(seeds.seed)))}: {100 * seeds.pruned_fraction_dense.mean():.1f}% "
                  f"± {100 * seeds.pruned_fraction_dense.std():.1f} at {seeds.test_acc.mean():.4f} "
                  f"± {seeds.test_acc.std():.4f}") if len(seeds) > 1 else ""
        lines.append(f"- {method_label(optimizer, scalarization)} (η0 {tried_text}): at most "
                     f"{100 * best.pruned_fraction_dense:.1f}% pruned ({int(best.nnz_dense):,} nonzeros) at "
                     f"{best.test_acc:.4f}, η0 = {_rate(best.learning_rate)}{edge}{spread}.")

    steps = collapse_transitions(ablation)
    if len(steps):
        lines.append("")
        lines.append("**The step to the empty network is abrupt.** " + " ".join(
            f"{method_label(s.optimizer, s.scalarization)} ends with no dense weight (test accuracy {s.empty_test_acc:.3f}, "
            f"the class prior) at η0 ≤ {_rate(s.empty_up_to)}"
            + ("." if s.next_rate is None or pd.isna(s.next_rate) else
               f" and keeps {100 * (1 - s.next_pruned_fraction):.1f}% of the dense weights ({100 * s.next_pruned_fraction:.1f}% "
               f"pruned, test accuracy {s.next_test_acc:.4f}) at {_rate(s.next_rate)}, a factor {s.rate_ratio:.2g} higher: no rate "
               f"tried lands between {100 * s.next_pruned_fraction:.0f}% and 100%.")
            for s in steps.itertuples()))

    if shared is not None and len(shared):
        lines.append("")
        lines.append("**One η0 shared by the four optimizers** (the original code's figures, ITP on, seed 0): " + "; ".join(
            f"η0 = {_rate(lr)}: " + ", ".join(f"{method_label(r.optimizer, r.scalarization)} {100 * r.pruned_fraction_dense:.1f}% "
                                              f"at {r.test_acc:.4f}" for r in g.itertuples())
            for lr, g in shared.groupby("shared_lr", sort=True)) + ".")

    if crossings is not None and len(crossings):
        layers = [c for c in crossings.columns if c.startswith("epoch_below/") and c != "epoch_below/all"]
        limits = [f"{MNIST_REFERENCE_NONZEROS.get(c.split('/')[1], '?'):,}" for c in layers]
        crossed = crossings[crossings[layers].notna().any(axis=1)]
        crossed = crossed.sort_values(["optimizer", "scalarization", "learning_rate", "seed"], kind="stable")
        alive, empty = crossed[crossed.nnz_dense > 0], crossed[crossed.nnz_dense == 0]
        lines.append("")
        lines.append(f"**Runs that cross the reference lines {' / '.join(limits)}** (first epoch below each; "
                     f"'-': never; {len(crossings)} runs checked):")
        for _, r in alive.iterrows():
            epochs = " / ".join("-" if pd.isna(r[c]) else str(int(r[c])) for c in layers)
            lines.append(f"- {method_label(r.optimizer, r.scalarization)} + ITP, η0 = {_rate(r.learning_rate)}, seed {r.seed}: "
                         f"epochs {epochs}; ends at {int(r.nnz_dense):,} nonzeros, {r.test_acc:.4f}.")
        if alive.empty:
            lines.append("- none of the runs that keep a nonzero dense weight.")
        if len(empty):
            all_below = empty["epoch_below/all"].dropna()
            lines.append(f"- and the {len(empty)} runs that end with the empty network, on their way to zero"
                         + (f" (all three lines crossed by epoch {int(all_below.min())}-{int(all_below.max())})"
                            if len(all_below) else "") + ".")
    return "\n".join(lines)

"""Notebooks 04 and 05: weighted-sum runs of the search scripts (REPRODUCTION_NOTES.md §6.2), the
dense grid of Fig. 4 and its tables, and ``KneeSearch``, the weighted-sum searches of REPRODUCTION_NOTES.md §7 on
real training runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import pareto
from ..paper import FIG4_BANDS
from ..run_config import PROTOCOLS, RunConfig
from ..runner import run_experiment
from .study import Study, setting
from ..optimizers import SCALARIZATIONS
from ..validation import Choice, Epochs, Float, Int, List, Optional, Seed, check_bool, check_epochs, check_float, check_int

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


def weighted_sum_grid(dense_points=40, dense_max=9e-4, include_original=True, extra_lambda2=(), **run_kwargs):
    """Configs of notebook 04: the original 26 weightings plus ``dense_points`` values of lambda2
    evenly spaced in [0, dense_max] (Fig. 4's range) and ``extra_lambda2`` (e.g. the joint front's
    tail past dense_max), without duplicates."""
    dense_points = check_int("dense_points", dense_points, minimum=0)
    dense_max = check_float("dense_max", dense_max, minimum=0.0, maximum=1.0)
    include_original = check_bool("include_original", include_original)
    extra = [check_float("extra_lambda2", v, minimum=0.0, maximum=1.0) for v in extra_lambda2]
    values = list(ORIGINAL_GRID) if include_original else []
    values += [float(v) for v in np.linspace(0.0, dense_max, dense_points)] if dense_points else []
    values += extra
    unique = list(dict.fromkeys(round(v, 12) for v in values))
    return [weighted_sum_run(v, **run_kwargs) for v in unique]


def grid_table(results, select_on="test"):
    """Notebook 04's ``grid.csv``: one row per weighted-sum run, sorted by scalarization (separate
    first) and lambda2; ``nondominated`` marks, per scalarization, the points no other point of
    the same grid beats in both cross-entropy (on ``select_on``) and l1."""
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


# Fig. 4's lambda scale: the paper's dots (digitised, ``helpers.fig4_digitise``) against our front.

# Each panel's dots are matched to our runs on the panel's y quantity: (a) the l1 norm, (b) nonzeros.
FIG4_MATCH_ON = {"a": "l1_dense", "b": "nnz_dense"}
FIG4_WHITE = 252.0  # a dot this light is at the top of the paper's colour bar: its lambda is a lower bound


def _decreasing_fit(y):
    """Least-squares non-increasing fit to ``y`` (pool adjacent violators): the fitted values."""
    blocks = []  # [mean, weight]
    for value in np.asarray(y, dtype=float):
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (m2, w2), (m1, w1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), m) for m, w in blocks])


def lambda_at(front, column, values):
    """lambda2 at which our front (a grid table, one scalarization) reaches ``values`` of ``column``
    (``nnz_dense`` or ``l1_dense``): log ``column`` is fitted as a non-increasing function of lambda2
    over the runs with lambda2 > 0 and a non-empty network, and log lambda2 interpolated linearly
    in log ``column`` between the fitted steps. NaN outside the front's range."""
    g = front[(front.lambda2 > 0) & (front[column] > 0)].sort_values("lambda2", kind="stable")
    if len(g) < 2:
        raise ValueError(f"lambda_at needs at least 2 runs with lambda2 > 0 and {column} > 0; got {len(g)}")
    log_lambda, fitted = np.log(g.lambda2.to_numpy()), _decreasing_fit(np.log(g[column].to_numpy()))
    levels, index = np.unique(fitted, return_inverse=True)  # increasing fitted value = decreasing lambda
    mean_log_lambda = np.array([log_lambda[index == i].mean() for i in range(len(levels))])
    x = np.log(np.asarray(values, dtype=float))
    return np.exp(np.interp(x, levels, mean_log_lambda, left=np.nan, right=np.nan))


def fig4_scale_points(dots, grid, scalarization="joint"):
    """One row per digitised paper dot (``{"a": DataFrame, "b": DataFrame}`` of
    ``fig4_digitise.digitise_fig4``): its panel, the quantity it is matched on and its value, its grey,
    the lambda of that grey on the paper's colour bar, its band (``helpers.paper.FIG4_BANDS``), the
    lambda2 at which ``scalarization``'s front in ``grid`` reaches the same value (``lambda_at``) and
    k = ours / paper. ``white``: the dot is at the top of the colour bar, so its lambda is a lower
    bound and its k an upper bound. A front with fewer than two usable runs gives NaN."""
    front = grid[grid.scalarization == scalarization]
    rows = []
    for panel, table in dots.items():
        column = FIG4_MATCH_ON[panel]
        usable = (front.lambda2 > 0) & (front[column] > 0)
        ours = lambda_at(front, column, table[column]) if usable.sum() >= 2 else np.full(len(table), np.nan)
        for (_, dot), lam in zip(table.iterrows(), ours):
            band = next((b["band"] for b in FIG4_BANDS if b["lo"] <= dot["lambda"] < b["hi"]), FIG4_BANDS[-1]["band"])
            rows.append({"panel": panel, "matched_on": column, "value": float(dot[column]), "grey": float(dot["grey"]),
                         "paper_lambda": float(dot["lambda"]), "band": band, "white": bool(dot["grey"] >= FIG4_WHITE),
                         "our_lambda2": float(lam), "k": float(lam / dot["lambda"]) if dot["lambda"] > 0 else np.nan})
    return pd.DataFrame(rows)


def fig4_scale_table(points):
    """k = ours / paper per band and overall (``fig4_scale_points``), over the dots with a finite k
    that are not at the white end of the bar: the number of dots, the median k, its interquartile
    range and its range; per panel and both panels together."""
    usable = points[np.isfinite(points.k) & ~points.white]
    rows = []
    for panel in ("a", "b", "a+b"):
        part = usable if panel == "a+b" else usable[usable.panel == panel]
        for band in [b["band"] for b in FIG4_BANDS] + ["all"]:
            g = part if band == "all" else part[part.band == band]
            k = g.k.to_numpy()
            rows.append({"panel": panel, "band": band, "dots": len(g),
                         "k_median": float(np.median(k)) if len(k) else np.nan,
                         "k_q25": float(np.quantile(k, 0.25)) if len(k) else np.nan,
                         "k_q75": float(np.quantile(k, 0.75)) if len(k) else np.nan,
                         "k_min": float(k.min()) if len(k) else np.nan, "k_max": float(k.max()) if len(k) else np.nan})
    return pd.DataFrame(rows)


def fig4_scale_summary(table):
    """One sentence per band and overall from ``fig4_scale_table``'s both-panel rows: median k with
    its interquartile range and the number of dots."""
    part = table[table.panel == "a+b"]
    return "; ".join(f"{r.band}: k = {r.k_median:.2f} (IQR {r.k_q25:.2f}-{r.k_q75:.2f}, {r.dots} dots)"
                     for r in part.itertuples() if r.dots)


def fig4_darkest_band(dots, grid, nnz_range=(20_000, 27_000), scalarization="joint"):
    """The paper's darkest dots against our runs with nonzeros in ``nnz_range``: for the paper, the
    digitised dots of panel (b) in the range (nonzeros, accuracy, lambda of their grey) and of panel
    (a) above the l1 of the range's sparsest run (l1, CE); for ours, each run's nonzeros, l1, CE and
    accuracy, its l1 relative to the mean of the paper's darkest l1 values and its accuracy minus
    the mean of the paper's (in points of %)."""
    lo, hi = nnz_range
    b = dots["b"][(dots["b"].nnz_dense >= lo) & (dots["b"].nnz_dense <= hi)]
    ours = grid[(grid.scalarization == scalarization) & (grid.nnz_dense >= lo) & (grid.nnz_dense <= hi)]
    a = dots["a"][dots["a"].l1_dense > 2_000]  # the top-left pair of panel (a), above any other dot
    paper_l1, paper_acc = float(a.l1_dense.mean()), float(b.test_acc.mean())
    rows = [{"source": "paper (digitised)", "lambda2": float(v), "nnz_dense": float(n), "test_acc": float(t),
             "l1_dense": np.nan, "test_ce": np.nan} for v, n, t in zip(b["lambda"], b.nnz_dense, b.test_acc)]
    rows += [{"source": "paper (digitised, panel a)", "lambda2": float(v), "nnz_dense": np.nan, "test_acc": np.nan,
              "l1_dense": float(l1), "test_ce": float(ce)} for v, l1, ce in zip(a["lambda"], a.l1_dense, a.test_ce)]
    rows += [{"source": f"ours ({scalarization})", "lambda2": float(r.lambda2), "nnz_dense": float(r.nnz_dense),
              "test_acc": float(r.test_acc), "l1_dense": float(r.l1_dense), "test_ce": float(r.test_ce),
              "l1_vs_paper": float(r.l1_dense / paper_l1 - 1), "acc_minus_paper_points": float(100 * (r.test_acc - paper_acc))}
             for r in ours.sort_values("lambda2").itertuples()]
    return pd.DataFrame(rows)


# The knee region's coordinates as named in a ``knee_seeds`` table (mean over seeds), and how to print them.
KNEE_COORDINATES = (("nnz_dense", "nonzeros", "{:,.0f}"), ("test_ce", "test CE", "{:.4f}"),
                    ("test_acc", "test accuracy", "{:.4f}"))


def knee_region_verdict(knee_seeds_table, region, methods=None, scalarization=None):
    """One sentence per row of notebook 05's ``knee_seeds`` table (optionally only ``methods`` /
    ``scalarization``): in which coordinates the seed mean of the knee lies inside ``region``
    (``helpers.paper.FIG4_KNEE``, inferred from the paper's figure) and by how much it misses the
    others, so that the notebook's claim follows the CSV."""
    sentences = []
    for row in knee_seeds_table.itertuples():
        if (methods is not None and row.methods not in methods) or (scalarization is not None and row.scalarization != scalarization):
            continue
        inside, outside = [], []
        for column, name, fmt in KNEE_COORDINATES:
            if column not in region:
                continue
            lo, hi = region[column]
            value = getattr(row, f"{column}_mean")
            text = f"{name} {fmt.format(value)}"
            if lo <= value <= hi:
                inside.append(f"{text} (region {fmt.format(lo)}-{fmt.format(hi)})")
            else:
                edge = lo if value < lo else hi
                outside.append(f"{text} ({'below' if value < lo else 'above'} {fmt.format(edge)} "
                               f"by {fmt.format(abs(value - edge))})")
        where = "the knee region inferred from the paper's figure"
        verdict = (f"inside {where} in every coordinate: {', '.join(inside)}" if not outside else
                   f"inside {where} in {', '.join(inside)}; outside it in {', '.join(outside)}" if inside else
                   f"outside {where} in every coordinate: {', '.join(outside)}")
        sentences.append(f"{row.methods} ({row.scalarization}, λ2 = {row.lambda2:.3g}), mean of {row.seeds} seeds: "
                         f"{verdict}.")
    return sentences


# Knee search (notebook 05): the weighted-sum searches of REPRODUCTION_NOTES.md §7 on real training runs.

SEARCH_METHODS = ("bisection", "dichotomic", "stochastic", "grid")
# Which split picks the knee: the test set (the paper) or a held-out validation split (B22).
SELECT_ON = ("test", "val")


@dataclass(frozen=True)
class KneeSearch(Study):
    """The settings of notebook 05's searches; every candidate is one cached weighted-sum run.

    ``protocol="faithful"``: the original filter, no filter after the last level (B21);
    ``"clean"``: convex filter, always filtered. ``select_on="val"`` scores candidates on the
    last 10,000 training images instead of the test set (B22).

    Its results are the runner's runs, not tables: ``config(weights)`` is a candidate's
    ``RunConfig`` and ``key(weights)`` that run's key (``RunConfig.key`` keeps the older keys).
    """

    epochs: int = setting(Epochs(), 10)
    seed: int = setting(Seed(), 0)
    learning_rate: float = setting(Float(0.0, min_open=True), 1e-3)
    train_subset: int | None = setting(Optional(Int(1)), None)
    select_on: str = setting(Choice(*SELECT_ON), "test")
    protocol: str = setting(Choice(*PROTOCOLS), "faithful")
    max_history: int = setting(Int(1), 20)
    grid_lambda2: tuple | None = setting(Optional(List(Float(0.0, 1.0), min_length=2)), None)
    scalarization: str = setting(Choice(*SCALARIZATIONS), "separate")

    def check(self):
        self.config((1.0, 0.0))  # validates the run settings (train_subset, ...) as RunConfig does, before any training

    @property
    def grid_weights(self):
        return list(ORIGINAL_GRID if self.grid_lambda2 is None else self.grid_lambda2)

    @property
    def filter(self):
        return ("original", False) if self.protocol == "faithful" else ("convex", True)

    def config(self, weights, epochs=None, seed=None):
        """The ``RunConfig`` of ``weights`` (lambda1, lambda2); ``epochs`` and ``seed`` default to the
        search's (None, never 0, means the default: epochs=0 is an error, as in ``RunConfig``)."""
        return weighted_sum_run(weights[1], lambda1=weights[0], epochs=self.epochs if epochs is None else epochs,
                                seed=self.seed if seed is None else seed, learning_rate=self.learning_rate,
                                train_subset=self.train_subset,
                                validation_size=10_000 if self.select_on == "val" else 0,
                                scalarization=self.scalarization)

    def key(self, weights, epochs=None, seed=None):
        """The key of the run of ``weights`` (its file in the cache's ``runs/``)."""
        return self.config(weights, epochs, seed).key()

    def cached(self, *args, **kwargs):
        raise TypeError("KneeSearch's results are the runner's runs, cached by run_experiment: use KneeSearch.run")

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
        check_epochs("knee_epochs", knee_epochs)
        check_bool("recompute", recompute)

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
        seeds = List(Seed(), unique=True)("seeds", seeds)
        check_epochs("knee_epochs", knee_epochs)
        check_bool("recompute", recompute)

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

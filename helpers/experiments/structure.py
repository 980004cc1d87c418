"""Structured, global and iterative pruning of the CIFAR CNN (notebook 07, project 003)."""

from __future__ import annotations

import functools
import io
import zipfile
from collections import Counter
from dataclasses import dataclass

import keras
import pandas as pd

from .. import data as data_lib
from .. import pruning
from ..cache import ResultCache, cached, config_hash
from ..files import check_record, check_record_object, read_json, write_json
from ..progress import tqdm
from ..pruning import compact, costs, masks_for, output_layer
from ..runner import guarded_fit
from ..validation import Bool, Choice, Epochs, Float, Fraction, Int, List, Optional, Seed, validated
from .post_training import _PROJECTS_UNITS
from .study import Study, setting, state
from .training import TRAINING_SPECS, trained_model

PROJECT003_TARGETS = (0.1, 0.3, 0.5, 0.6, 0.7, 0.9)
STRUCTURE_METHODS = ("l1_unstructured", "l2_structured", "global_unstructured")


# Project 003's three experiments: which layers l1_unstructured prunes (its printed table).
PROJECT003_EXPERIMENTS = {"conv1 only": ["conv1"], "fc2 only": ["fc2"], "all layers": None}
# Its printed test accuracies (%), per experiment and sparsity (the project: REPRODUCTION_NOTES.md §12).
PROJECT003_PRINTED = {"conv1 only": (57.74, 57.74, 57.74, 57.74, 48.65, 22.90),
                   "fc2 only": (68.07, 68.21, 68.16, 68.10, 68.13, 67.77),
                   "all layers": (67.98, 67.46, 63.14, 54.83, 40.17, 11.39)}


def project003_table(model, data, targets=PROJECT003_TARGETS, experiments=PROJECT003_EXPERIMENTS):
    """Project 003 at its own protocol: per-layer ``l1_unstructured`` (weights only, biases kept) of
    the trained network at each sparsity, without retraining, for each experiment's layers (all
    kernels, the output layer included, for ``"all layers"``). Project 003 prunes one network in
    place for increasing amounts with ``prune.remove`` after each step; the zeros it made are
    the smallest magnitudes, so that is the one-shot mask at each amount, computed here from the
    trained weights. Rows: experiment, target, test_acc, the deflate-zipped size of the weights
    (KiB, as project 003 zips its state_dict), and the dense network's row."""

    def zipped_kib():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for index, weight in enumerate(model.get_weights()):
                archive.writestr(f"w{index}.npy", weight.astype("float32").tobytes())
        return len(buffer.getvalue()) / 1024

    def accuracy():
        return float(model.evaluate(data.x_test, data.y_test, batch_size=500, verbose=0)[1])

    trained = model.get_weights()
    rows = [{"experiment": "dense", "target": 0.0, "test_acc": accuracy(), "zip_kib": zipped_kib()}]
    for name, layers in experiments.items():
        for target in targets:
            model.set_weights(trained)
            pruning.apply_masks(model, pruning.masks_for(model, target, layers=layers))
            rows.append({"experiment": name, "target": target, "test_acc": accuracy(), "zip_kib": zipped_kib()})
    model.set_weights(trained)
    return rows


def per_layer_sparsity(model, target, methods=STRUCTURE_METHODS):
    """Notebook 07: per-layer sparsity of each one-shot method at ``target`` (weights restored)."""

    weights, table = model.get_weights(), {}
    for method in methods:
        pruning.apply_masks(model, structure_masks(model, method, target))
        table[method.replace("_", " ")] = {k: v for k, v in pruning.sparsity(model).items()
                                                   if k not in ("total", "skipped")}
        model.set_weights(weights)
    return table


def structure_masks(model, method, target):
    """Project 003's three methods. Unstructured ones prune every conv and linear layer, the output
    layer included (project 003's case (c)); structured pruning removes filters/units of every
    layer but the output one (its 10 classes must stay)."""

    if method == "l1_unstructured":
        return masks_for(model, target)
    if method == "l2_structured":
        return masks_for(model, target, importance="l2", granularity="filter", ignored_layers=[output_layer(model)],
                         **_PROJECTS_UNITS)
    if method == "global_unstructured":
        return masks_for(model, target, scope="global")
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(STRUCTURE_METHODS)}")


@validated(targets=List(Fraction()), methods=List(Choice(*STRUCTURE_METHODS), unique=True), retrain_epochs=Epochs(0),
           gmp_epochs=Epochs(), batch_size=Int(1), learning_rate=Float(0.0, min_open=True), latency_batch=Int(1),
           latency_repeats=Int(1), progress=Bool(), retrain_subset=Optional(Int(1)), seed=Seed())
def structure_sweep(model, data, targets=PROJECT003_TARGETS, methods=STRUCTURE_METHODS, retrain_epochs=1,
                    gmp_epochs=2, batch_size=32, learning_rate=1e-3, latency_batch=256, latency_repeats=10,
                    progress=True, retrain_subset=None, seed=0, partial=None):
    """Notebook 07's experiment: every method one-shot (prune, no retraining) and iterative
    (prune to each target in turn, retraining ``retrain_epochs`` after each step), plus gradual
    magnitude pruning (per layer, polynomial schedule over ``gmp_epochs`` of fine-tuning) to each
    target. Structured networks are compacted before timing. Returns rows with
    ``method, schedule, target_sparsity, achieved_sparsity, test_acc, params, flops, latency_ms``.

    ``retrain_subset``: retraining and GMP's fine-tuning use a stratified subset of this many
    training images (drawn with ``seed``) instead of all of them, a reduced protocol for networks
    whose full epochs are too slow; accuracies are always on the whole test set.

    ``partial``: a JSON file where each finished segment of the sweep (the dense row; per method
    its one-shot rows and its iterative chain; GMP per target) is kept, so that a sweep longer
    than a session resumes where it stopped, with the same rows. Each segment starts from the
    trained weights with the random state reset to ``seed``.
    """
    x_retrain, y_retrain = data.x_train, data.y_train
    if retrain_subset is not None:
        if retrain_subset > len(y_retrain):
            raise ValueError(f"retrain_subset must be <= the {len(y_retrain)} training images, got {retrain_subset}")
        picked = data_lib.stratified_subset(y_retrain, retrain_subset, seed)
        x_retrain, y_retrain = x_retrain[picked], y_retrain[picked]
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

    def one_shot_rows(method):  # each target from the trained weights
        found = []
        for target in targets:
            reset()
            pruning.one_shot(model, lambda m, t: structure_masks(m, method, t), target)
            found.append(row(method, "one-shot", target))
        return found

    def iterative_rows(method):  # each step prunes the retrained network further
        found = []

        def retrain(m, target):
            guarded_fit(m, f"{data.name}-{method}-iterative-{target:g}", x_retrain, y_retrain,
                        batch_size=batch_size, epochs=retrain_epochs, verbose=0)
            found.append(row(method, "iterative", target))

        pruning.iterative_pruning(model, lambda m, t: structure_masks(m, method, t), sorted(targets), retrain)
        return found

    steps_per_epoch = -(-len(x_retrain) // batch_size)

    def gmp_row(target):
        gmp = pruning.GradualMagnitudePruning(model, final_sparsity=target, include_output=True,
                                              end_step=max(1, int(0.75 * gmp_epochs * steps_per_epoch)),
                                              frequency=max(1, steps_per_epoch // 10))
        guarded_fit(model, f"{data.name}-gmp-{target:g}", x_retrain, y_retrain, batch_size=batch_size,
                    epochs=gmp_epochs, verbose=0, callbacks=[gmp])
        return [row("gmp", "gradual", target)]

    # The sweep is a list of segments, each a pure function of the trained weights and ``seed``
    # (the random state is reset at its start): the dense row, per method its one-shot rows and
    # its iterative chain, and GMP per target. With ``partial`` each finished segment's rows are
    # written there, so an interrupted sweep resumes at the first unfinished segment and gives
    # the rows an uninterrupted one would.
    segments = [("dense", lambda: [row("dense", "none", 0.0)])]
    for method in methods:
        segments += [(f"{method}/one-shot", functools.partial(one_shot_rows, method)),
                     (f"{method}/iterative", functools.partial(iterative_rows, method))]
    segments += [(f"gmp/{target:g}", functools.partial(gmp_row, target)) for target in targets]
    done = _read_segments(partial, [name for name, _ in segments])
    bar = tqdm(total=len(methods) * 2 * len(targets) + len(targets), desc="structure sweep", disable=not progress,
               leave=False)
    rows = []
    try:
        for name, compute in segments:
            if name not in done:
                reset()
                keras.utils.set_random_seed(seed)
                done[name] = compute()
                if partial is not None:
                    write_json(partial, {"segments": done})
            rows += done[name]
            bar.update(len(done[name]) - (name == "dense"))
    finally:  # also when interrupted: the model is left as it came, trained and without masks
        bar.close()
        reset()
    return rows


def _read_segments(partial, names):
    """The finished segments stored in ``partial`` (a dict name -> rows), none if there is no such
    file; a file that is unreadable or names other segments is moved aside (``quarantine``)."""
    if partial is None:
        return {}

    def check(stored):
        check_record_object(stored, "the partial sweep", ("segments",))
        check_record(isinstance(stored["segments"], dict) and set(stored["segments"]) <= set(names),
                     f"the partial sweep's segments are not segments of this sweep ({names})")

    stored = read_json(partial, check=check)
    return dict(stored["segments"]) if stored else {}


# The data a table was computed on is part of its configuration (so each cached table carries it):
# the JPEG stand-in's tables keep the ``source`` file name they have always been keyed by (the
# committed keys), every other variant is named by ``data_variant``, whatever file or download
# it came from.
STAND_IN_SOURCE = "cifar10-jpeg.npz"


def data_config(variant):
    """The configuration entry naming the data variant a table was computed on."""

    return {"source": STAND_IN_SOURCE} if variant == data_lib.STAND_IN else {"data_variant": variant}


def table_variant(config):
    """The data variant of a cached table, from its stored configuration (``data_config``); the
    ``source`` of a table written before official data had a variant name is a file name."""

    if config.get("data_variant"):
        return config["data_variant"]
    return data_lib.STAND_IN if config.get("source") == STAND_IN_SOURCE else data_lib.OFFICIAL


def variants_label(variants, unit="table"):
    """``"CIFAR-10 (jpeg-q75 stand-in)"`` for tables of one variant; with several, the count of each:
    ``"CIFAR-10 (jpeg-q75 stand-in: 1 seed; official: 2 seeds)"``."""

    counts = Counter(variants)
    if len(counts) <= 1:
        return data_lib.dataset_label("cifar10", next(iter(counts), data_lib.OFFICIAL))
    parts = "; ".join(f"{variant}: {n} {unit}{'s' * (n != 1)}" for variant, n in sorted(counts.items()))
    return f"{data_lib.PRETTY_NAMES['cifar10']} ({parts})"


def variants_note(variants, loaded, what="these results"):
    """A sentence when tables of ``variants`` are shown on a machine that would load ``loaded``
    (they are still shown, labelled with their own data); None when they all match."""

    others = [v for v in variants if v != loaded]
    if not others:
        return None
    return (f"NOTE: {what} were computed on {variants_label(others)}, but this machine would load "
            f"{data_lib.dataset_label('cifar10', loaded)}; they are shown as computed, labelled with their own data "
            "(recompute=True computes them on this machine's data).")


def _cached_table(name, config, variant, compute, recompute=False, cached_only=False):
    """``(value, from the cache?, variant)`` of the table ``name``: the one computed on ``variant``
    (this machine's data), else, unless ``recompute``, the one cached for another variant (shown
    as what it is), else ``compute()`` on this machine's data (``(None, False, None)`` with
    ``cached_only``)."""
    store = ResultCache()
    if not recompute:
        for other in dict.fromkeys((variant, data_lib.STAND_IN, data_lib.OFFICIAL)):
            stored = dict(config, **data_config(other))
            if store.table_path(name, stored).exists():
                try:
                    value, hit = cached(name, stored, _not_cached)
                except _NotCached:  # unreadable, moved aside: not served
                    continue
                return value, hit, other
    if cached_only:
        return None, False, None
    value, hit = cached(name, dict(config, **data_config(variant)), compute, recompute=recompute)
    return value, hit, variant


class _NotCached(LookupError):
    pass


def _not_cached():
    raise _NotCached()


@dataclass(frozen=True)
class StructureStudy(Study):
    """Notebook 07's procedure: project 003's CNN trained with SGD on CIFAR-10 (inputs normalised
    with mean 0.5 and std 0.5), loaded from the model cache or trained only when a result needs
    it, and its cached sweep and per-layer table. The cache keys are the configurations the
    notebook has always used; ``data`` is the (subset of the) data they were computed on, loaded
    when first used.

    Each table's configuration names the data variant it was computed on (``data_config``). A
    table cached for another variant than the one loaded here (the committed stand-in tables on a
    machine with the official CIFAR-10) is shown, not recomputed: ``label`` names the data of the
    tables shown and ``note`` says when that is not this machine's data.
    """

    width: float = setting(Float(0.0, min_open=True))
    epochs: int = setting(TRAINING_SPECS["epochs"])
    batch_size: int = setting(TRAINING_SPECS["batch_size"])
    learning_rate: float = setting(TRAINING_SPECS["learning_rate"])
    seed: int = setting(TRAINING_SPECS["seed"], 0)
    train_subset: int | None = setting(TRAINING_SPECS["train_subset"], None)
    recompute: bool = setting(Bool(), False, key=False)
    shown: dict = state()  # table name -> the data variant of the table shown
    _trained: dict = state()  # the trained base CNN, once built

    @functools.cached_property
    def data(self):
        return data_lib.load_dataset("cifar10", train_subset=self.train_subset, seed=self.seed,
                                     cifar_normalization="half")

    @property
    def variant(self):
        """The data variant a result computed here is stored under: the loaded data's, else the
        one its file says (``file_variant``), so that reading the cache loads no data."""
        return self.data.variant if "data" in self.__dict__ else data_lib.file_variant("cifar10")

    def config(self, **point):
        """The cache configuration of a table computed here, on this machine's data."""
        return super().config(**point, **data_config(self.variant))

    def legacy(self, config):
        # Sweeps cached before the retraining subset existed retrained on all the training data.
        if config.get("retrain_subset", 0) is None:
            del config["retrain_subset"]
        return config

    def pretrained(self):
        """The trained base CNN."""
        if "cnn" not in self._trained:
            self._trained["cnn"] = trained_model(
                "cifar_cnn", "cifar10", self.epochs, self.batch_size, self.learning_rate, seed=self.seed,
                train_subset=self.train_subset, model_kwargs={"width": self.width}, optimizer="sgd",
                data_kwargs={"cifar_normalization": "half"}, recompute=self.recompute)[0]
        return self._trained["cnn"]

    def label(self, *names):
        """The data label of the tables ``names`` shown so far (all of them if none is named; this
        machine's data before any): ``"CIFAR-10 (jpeg-q75 stand-in)"``."""
        variants = [self.shown[n] for n in names if n in self.shown] if names else list(self.shown.values())
        return variants_label(variants or [self.variant])

    def note(self, *names):
        """A sentence when a table shown (of ``names``, else any) was computed on another data
        variant than this machine's; None otherwise."""
        variants = [self.shown[n] for n in names if n in self.shown] if names else list(self.shown.values())
        what = f"the cached {', '.join(names)}" if names else "the cached results"
        return variants_note(variants, self.variant, what)

    def _table(self, name, config, compute, cached_only=False):
        value, hit, variant = _cached_table(name, Study.config(self, **config), self.variant, compute,
                                            recompute=self.recompute, cached_only=cached_only)
        if variant is not None:
            self.shown[name] = variant
        return value, hit

    # The gradual-magnitude rows depend on GMP's semantics, so they are part of the sweep's key:
    # the sweep cached before GMP followed tfmot 0.8 step for step is not served for it.
    GMP_SEMANTICS = "tfmot-0.8"

    def sweep_config(self, targets, retrain_epochs, gmp_epochs, retrain_batch, latency_batch, latency_repeats,
                     retrain_subset=None):
        """The cache configuration of ``sweep`` on this machine's data."""
        return self.config(**self._sweep_extra(targets, retrain_epochs, gmp_epochs, retrain_batch, latency_batch,
                                               latency_repeats, retrain_subset))

    def _sweep_extra(self, targets, retrain_epochs, gmp_epochs, retrain_batch, latency_batch, latency_repeats,
                     retrain_subset):
        return dict(targets=list(targets), retrain_epochs=retrain_epochs, gmp_epochs=gmp_epochs,
                    retrain_batch=retrain_batch, latency_batch=latency_batch, latency_repeats=latency_repeats,
                    gmp=self.GMP_SEMANTICS, retrain_subset=retrain_subset)

    def sweep(self, targets, retrain_epochs, gmp_epochs, retrain_batch, latency_batch, latency_repeats,
              retrain_subset=None, cached_only=False):
        """``(rows, from the cache?)`` of ``structure_sweep`` (retraining at ``retrain_batch``, on
        ``retrain_subset`` training images if given); ``(None, False)`` with ``cached_only`` when
        it is not in the cache (nothing is trained)."""
        extra = self._sweep_extra(targets, retrain_epochs, gmp_epochs, retrain_batch, latency_batch, latency_repeats,
                                  retrain_subset)
        # Finished segments are kept in partial/ (committed between sessions) until the table is written.
        partial = ResultCache().path("partial", f"structure_sweep-{config_hash(self.config(**extra))}.json")
        rows, hit = self._table("structure_sweep", extra, lambda: structure_sweep(
            self.pretrained(), self.data, targets, retrain_epochs=retrain_epochs, gmp_epochs=gmp_epochs,
            batch_size=retrain_batch, learning_rate=self.learning_rate, latency_batch=latency_batch,
            latency_repeats=latency_repeats, retrain_subset=retrain_subset, seed=self.seed, partial=partial),
            cached_only=cached_only)
        if rows is not None and not hit:
            partial.unlink(missing_ok=True)
        return rows, hit

    def project003_table(self, targets=PROJECT003_TARGETS, cached_only=False):
        """``(rows, from the cache?)`` of ``project003_table`` (the model compiled for evaluation);
        ``(None, False)`` with ``cached_only`` when it is not in the cache (nothing is trained)."""
        return self._table("seed003_table", dict(targets=list(targets)),
                           lambda: project003_table(self.pretrained(), self.data, targets), cached_only=cached_only)

    def per_layer_sparsity(self, target):
        """``(table, from the cache?)`` of ``per_layer_sparsity`` at ``target``, cached like the
        sweep so that a fresh clone redraws the figure without the base network."""
        return self._table("per_layer_sparsity", dict(target=target),
                           lambda: per_layer_sparsity(self.pretrained(), target))


def project003_comparison(seeds=(0, 1, 2), width=1.0, epochs=2, batch_size=4, learning_rate=1e-3, train_subset=None,
                       cached_only=True):
    """Project 003's printed table beside ours at its protocol, over the base networks of ``seeds``:
    ``(frame, missing seeds)``. One row per experiment and sparsity (and the dense network): the
    project's printed test accuracy (%, column ``seed_printed``), ours as mean and std over the
    seeds found (%), and the deflate-zipped weights (KiB, mean). With ``cached_only`` (default)
    seeds whose table is not cached are listed as missing, not trained (about 45 minutes per base
    network on this CPU), and no data is loaded.
    ``frame.attrs``: ``"data_label"``, the data the tables were computed on (from the cached tables),
    and ``"note"``, a sentence when that is not the data this machine would load (else None)."""
    tables, variants, missing = {}, [], []
    for seed in seeds:
        study = StructureStudy(width, epochs, batch_size, learning_rate, seed=seed, train_subset=train_subset)
        rows, _ = study.project003_table(cached_only=cached_only)
        loaded = study.variant  # the file's until a table is computed, then the loaded data's
        if rows is None:
            missing.append(seed)
        else:
            tables[seed] = pd.DataFrame(rows)
            variants.append(study.shown["seed003_table"])
    if not tables:
        return None, missing
    ours = pd.concat(tables, names=["seed"]).reset_index(level=0)
    summary = (ours.groupby(["experiment", "target"], sort=False)
               .agg(ours_mean=("test_acc", "mean"), ours_std=("test_acc", "std"), seeds=("seed", "count"),
                    zip_kib=("zip_kib", "mean")).reset_index())
    summary[["ours_mean", "ours_std"]] *= 100
    printed = {(name, t): acc for name, accs in PROJECT003_PRINTED.items() for t, acc in zip(PROJECT003_TARGETS, accs)}
    summary.insert(2, "seed_printed", [printed.get((e, t), float("nan")) for e, t in zip(summary.experiment,
                                                                                        summary.target)])
    summary["difference"] = summary.ours_mean - summary.seed_printed
    summary.attrs["data_label"] = variants_label(variants, unit="base network")
    summary.attrs["note"] = variants_note(variants, loaded, "the cached project 003 tables")
    return summary, missing

"""Cached, resumable experiment runner: one call trains one fully described configuration.

A run is a pure function of its resolved ``RunConfig``: the model's initial weights come
from the seed alone (the same for every optimizer), the data order of epoch e from
``(seed, e)``, and dropout's random state is part of the checkpointed model variables. So
results are keyed by the configuration (``helpers.run_config.RunConfig.key``), and a sweep can be
spread over processes or machines (``helpers.sweep.run_sweep``); the runs share nothing but the
cache folder, whose files are written atomically (layout, reads and writes:
``helpers.cache.ResultCache``).

* Finished runs: ``results/cache/runs/<dataset>-<optimizer>-...-<key>.json`` (small, committed).
* Unfinished runs: a checkpoint after every epoch in ``results/cache/partial/`` (a few MB;
  committed while a run longer than a session is under way, so a new machine resumes it, and
  deleted by the run when it finishes); an interrupted run resumes from its last finished epoch with identical numbers. A
  checkpoint records its configuration key and is ignored (moved aside) when the key differs.
* Failed runs: a run that fails is a *record*, never a result: ``results/cache/failed/<slug>-<key>.json``
  with ``"status": "failed"``, its ``kind``, the reason and the epoch. Kinds (``FAILURE_KINDS``):
  ``diverged`` (a non-finite loss or weights; its checkpoint is discarded, so a retry starts from
  the initial weights), ``raised`` (training raised) and ``io`` (the disk, permissions, a missing
  folder). ``find_cached`` never returns a failure; a later ``run_experiment`` raises
  ``RunFailedError`` instead of retraining a diverged or raised run unless asked
  (``retry_failed=True`` or ``recompute=True``), while an ``io`` failure is not the run's fault
  and is retried by the next call; ``helpers.sweep.run_sweep`` leaves failures out of its results and lists
  them (``results.failed`` and a warning). Finished runs carry ``"status": "finished"``; older
  files without the field load as finished, unchanged, and older failure records without a kind
  get it from their reason.
* Every record names the Keras backend that made it (``"backend": "tensorflow"`` or ``"jax"``,
  provenance like ``environment``; ``RunResult.backend``). It is **not** part of the key: a run
  made under ``KERAS_BACKEND=jax`` on a GPU lands in the same cache file, and the same tables, as
  one made on TensorFlow, and either is a hit for the other (with an
  ``EnvironmentMismatchWarning`` naming the backend). A record without the field was made before
  it existed, by TensorFlow.
* Every record names the data it trained on: ``"dataset_variant"`` (``"official"`` or ``"jpeg-q75
  stand-in"``) and ``"dataset_hash"`` (``helpers.data.content_hash`` of the raw arrays, newer
  records). Provenance again, **not** part of the key: every committed entry keeps its key, and a
  record without the field gets the variant it was made on (``DEFAULT_VARIANTS``: CIFAR-10 runs
  were all made on the JPEG stand-in, MNIST on the official files). Labels and figure titles take
  the variant from the runs (``helpers.sweep.dataset_label``), never from this machine's data file, and
  ``variant_note`` says when the runs were made on another variant than the one this machine
  would load.
* Every record is checked against its schema when it is read back (``check_run_record``,
  ``check_failure_record``, the checkpoint's in ``_restore``): types, finite numbers, ranges
  (accuracies in [0, 1], nonzero counts within the layers' sizes), histories of exactly the
  recorded epochs, a summary that agrees with the history, and a stored configuration that is
  resolved and hashes to the file's key. A record that fails is quarantined like an unreadable
  file (``helpers.cache``) and the run is recomputed.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import data as data_lib
from .callbacks import Diverged, EpochTimer, MultiGradientWeightsLogger, NonFiniteGuard
from .models import LAMBDA_CONV, build_model, dense_layers
from .objectives import SparsityObjective, dense_l1
from .cache import ResultCache, non_finite_values, record_field
from .files import RecordError, atomic_write, check_record, check_record_object, quarantine, read_json
from .validation import Bool, Float, Int, Optional, validated
from .pruning import enable_itp, nonzero_counts
from .run_config import RunConfig, dense_sizes, learning_rate_schedule, make_optimizer
from .runtime import enable_determinism, environment
from .learning_rate import PaperSchedule
from .progress import tqdm

# Keras backends a record may name (``keras.config.backend()``); a record without one is TensorFlow's.
KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
DEFAULT_BACKEND = "tensorflow"
# The data variant of a record written before records named it: what every such run was made on.
DEFAULT_VARIANTS = {"mnist": data_lib.OFFICIAL, "fashion_mnist": data_lib.OFFICIAL, "cifar10": data_lib.STAND_IN}
EVAL_BATCH = 1000


# What made a run fail: a non-finite loss or weights, an exception in training, the disk.
FAILURE_KINDS = ("diverged", "raised", "io")
# Failures that are the run's own: not retried unless asked. An io failure is retried by the next call.
STICKY_FAILURES = ("diverged", "raised")
# The names of the builtin OSErrors (PermissionError, FileNotFoundError, ...): "raised OSError" in the
# reason of an older failure record is an io failure.
_OS_ERRORS = {name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, OSError)}


def failure_kind(reason) -> str:
    """The kind of a failure from its reason (failure records written before kinds existed)."""
    reason = str(reason)
    if "diverged" in reason:
        return "diverged"
    raised = re.search(r"raised (\w+)", reason)
    if reason.startswith("I/O error") or (raised and raised.group(1) in _OS_ERRORS):
        return "io"
    return "raised"


class RunFailedError(RuntimeError):
    """A run that failed, recorded in ``failed/``. ``kind`` is one of ``FAILURE_KINDS`` (by default
    read from the reason); ``diverged`` and ``raised`` runs are not retried unless asked, ``io``
    ones are retried by the next call. ``path`` is the record (None if there is none), ``reason``
    and ``epoch`` say what happened when."""

    def __init__(self, slug, reason, epoch, path=None, kind=None):
        self.slug, self.reason, self.epoch, self.path = slug, reason, epoch, path
        self.kind = kind or failure_kind(reason)
        where = f"; record: {path}" if path else ""
        if self.kind == "io":
            advice = ("An I/O failure is not the run's: the next call retries it (free the disk, fix the "
                      "permissions or the folder first)")
        else:
            advice = ("A failed run is never a result; retry it with retry_failed=True (or recompute=True) once "
                      "the cause is fixed")
        super().__init__(f"run {slug} failed at epoch {epoch}: {reason}{where}. {advice}")


def guarded_fit(model, name, *args, callbacks=(), **kwargs):
    """``model.fit(*args, **kwargs)`` under ``NonFiniteGuard`` (after ``callbacks``), for the studies'
    plain fits: a diverged network (a non-finite loss or weight at an epoch's end) raises
    ``RunFailedError`` naming ``name`` and that epoch; it never goes on to be measured."""
    try:
        return model.fit(*args, callbacks=[*callbacks, NonFiniteGuard()], **kwargs)
    except Diverged as exc:
        raise RunFailedError(name, exc.reason, exc.epoch) from None


@dataclass
class RunResult:
    config: RunConfig
    history: dict
    summary: dict
    key: str
    path: Path
    from_cache: bool
    environment: dict | None = None  # versions the run was made under (keras, backend, ...)
    backend: str = DEFAULT_BACKEND  # the Keras backend that made the run (provenance, not in the key)
    dataset_variant: str | None = None  # the data it trained on (provenance, not in the key); None: the default
    dataset_hash: str | None = None  # helpers.data.content_hash of those arrays (None: an older record)

    def __post_init__(self):
        if self.dataset_variant is None:
            self.dataset_variant = DEFAULT_VARIANTS.get(self.config.dataset, data_lib.OFFICIAL)

    @property
    def dataset_label(self) -> str:
        """``"CIFAR-10 (jpeg-q75 stand-in)"``: the data this run was made on."""
        return data_lib.dataset_label(self.config.dataset, self.dataset_variant)

    def history_frame(self):
        """Per-epoch history as a pandas DataFrame (row 0 = before training)."""
        columns = {k: v for k, v in self.history.items()
                   if not isinstance(v, dict) and not k.startswith("batch_")}  # per-batch lists are longer
        frame = pd.DataFrame(columns)
        for group in ("nnz", "nnz_bias"):
            for layer, values in self.history[group].items():
                frame[f"{group}/{layer}"] = values
        return frame


def record_backend(stored) -> str:
    """The Keras backend that made a stored run or failure: its ``backend`` field, else its
    environment's, else ``"tensorflow"`` (records written before either existed)."""
    return stored.get("backend") or (stored.get("environment") or {}).get("backend") or DEFAULT_BACKEND


def record_dataset_variant(stored) -> str:
    """The data variant a stored run was made on: its ``dataset_variant``, else the one every run of
    its dataset was made on before records named it (``DEFAULT_VARIANTS``)."""
    dataset = (stored.get("config") or {}).get("dataset", "mnist")
    return stored.get("dataset_variant") or DEFAULT_VARIANTS.get(dataset, data_lib.OFFICIAL)


@functools.lru_cache(maxsize=2)
def _load_data(dataset, train_subset, validation_size, seed):
    return data_lib.load_dataset(dataset, train_subset=train_subset, validation_size=validation_size, seed=seed)


RUN_KEYS = ("key", "config", "summary", "history")


def find_cached(config: RunConfig, cache_dir=None):
    """Path of the *finished* run of ``config`` in the cache, or None.

    A failed run is never found here (see ``find_failed``); an unreadable file is moved aside
    with a ``CorruptCacheWarning`` and counts as missing."""
    result = load_cached(config, cache_dir)
    return result.path if result is not None else None


def load_cached(config: RunConfig, cache_dir=None):
    """The finished ``RunResult`` of ``config`` from the cache, or None. A file that fails
    ``check_run_record`` is moved aside with a ``CorruptCacheWarning`` and counts as missing."""
    key = config.key()
    for path in ResultCache(cache_dir).find("runs", key):
        stored = read_json(path, check=lambda stored: check_run_record(stored, key))
        if stored is not None:
            return _result_from_stored(stored, path)
    return None


def find_failed(config: RunConfig, cache_dir=None, sticky_only=False):
    """Path of the failure record of ``config`` (``failed/<slug>-<key>.json``), or None; with
    ``sticky_only``, only a failure that is not retried unless asked (``STICKY_FAILURES``). A
    record that fails ``check_failure_record`` is moved aside and counts as missing."""
    key = config.key()
    for path in ResultCache(cache_dir).find("failed", key):
        record = read_json(path, check=lambda record: check_failure_record(record, key))
        if record is not None and (not sticky_only or _kind_of(record) in STICKY_FAILURES):
            return path
    return None


def _key_of(path):
    """The configuration key that ends a cache file's name (``<slug>-<key>.json``)."""
    return Path(path).name.rsplit("-", 1)[-1].split(".", 1)[0]


def load_failed(path):
    """The failure record at ``path`` (a dict with status, kind, reason, epoch, config, ...), or
    None if there is none or it fails its schema (then it is moved aside)."""
    return read_json(path, check=lambda record: check_failure_record(record, _key_of(path)))


def _kind_of(record):
    return record.get("kind") or failure_kind(record["reason"])


def failed_error(config, path):
    record = load_failed(path)
    if record is None:
        return RunFailedError(config.slug(), "unknown (its failure record is gone)", None, None, kind="raised")
    return RunFailedError(config.slug(), record["reason"], record.get("epoch"), path, kind=_kind_of(record))


# Records read back: one schema per stored kind. Each check raises RecordError naming the field and
# the reason; a reader then quarantines the file and recomputes (helpers.files.read_json).

ACCURACY, NON_NEGATIVE, FINITE = Float(0.0, 1.0), Float(0.0), Float()
# The per-epoch values of a history, by name (index 0 is the state before training).
HISTORY_SPECS = {"lr": NON_NEGATIVE, "test_ce": NON_NEGATIVE, "train_ce": NON_NEGATIVE, "val_ce": NON_NEGATIVE,
                 "test_accuracy": ACCURACY, "train_accuracy": ACCURACY, "val_accuracy": ACCURACY,
                 "l1_dense": NON_NEGATIVE, "l1_dense_bias": NON_NEGATIVE, "conv_l2": NON_NEGATIVE,
                 "penalty": Optional(NON_NEGATIVE), "epoch_seconds": NON_NEGATIVE, "c1": FINITE, "c2": FINITE}
# Values that do not exist before training: epoch 0's time, and the min-norm weights c1, c2.
NOT_BEFORE_TRAINING = ("epoch_seconds", "c1", "c2")


def _schema(check):
    """A schema check whose unforeseen shapes (a list where a dict was expected, ...) are RecordErrors too."""
    @functools.wraps(check)
    def checked(*args, **kwargs):
        try:
            return check(*args, **kwargs)
        except RecordError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise RecordError(f"{type(exc).__name__}: {exc}") from None
    return checked


@_schema
def stored_config(stored, key, what="config") -> RunConfig:
    """The resolved ``RunConfig`` of a stored configuration, which must be resolved already (what
    the runner writes) and hash to ``key``, the file's key."""
    check_record_object(stored, what)
    unknown = sorted(set(stored) - {f.name for f in dataclasses.fields(RunConfig)})
    check_record(not unknown, f"{what} has unknown fields {unknown}")
    values = dict(stored)
    if isinstance(values.get("weights"), list):
        values["weights"] = tuple(values["weights"])
    try:
        config = RunConfig(**values).resolved()
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{what} is not a valid RunConfig: {exc}") from None
    resolved = config.to_dict()
    differing = sorted(k for k in stored if stored[k] != resolved[k])
    check_record(not differing, f"{what} is not resolved: {differing} differ from their resolved values")
    check_record(config.key() == key, f"{what} hashes to the key {config.key()}, not to the file's key {key}")
    return config


@_schema
def check_history(history, config, epochs, what="history"):
    """A history of exactly ``epochs`` epochs (plus row 0, before training) of ``config``'s model:
    every per-epoch list that long, every number finite and in range, nonzero counts within the
    layers' sizes."""
    required = ["epoch", "lr", "test_ce", "test_accuracy", "l1_dense", "nnz", "nnz_bias"]
    required += ["train_ce", "train_accuracy"] if config.eval_train else []
    required += ["val_ce", "val_accuracy"] if config.validation_size else []
    check_record_object(history, what, required)
    rows = epochs + 1
    check_record(history["epoch"] == list(range(rows)), f"{what}['epoch'] must be the epochs 0..{epochs} of the "
                 f"record, got {history['epoch']!r:.120}")
    sizes = dense_sizes(config.model)
    for name, values in history.items():
        if name in ("nnz", "nnz_bias", "nnz_before_itp"):
            check_record_object(values, f"{what}[{name!r}]")
            check_record(sorted(values) == sorted(sizes), f"{what}[{name!r}] must have the layers {sorted(sizes)}, "
                         f"got {sorted(values)}")
            for layer, (kernel, bias) in sizes.items():
                spec = Int(0, bias if name == "nnz_bias" else kernel)
                if name == "nnz_before_itp":
                    record_field(spec, f"{what}[{name!r}][{layer!r}]", values[layer])
                    continue
                counts = values[layer]
                check_record(isinstance(counts, list) and len(counts) == rows,
                             f"{what}[{name!r}][{layer!r}] must be a list of {rows} counts")
                for i, count in enumerate(counts):
                    record_field(spec, f"{what}[{name!r}][{layer!r}][{i}]", count)
            continue
        check_record(isinstance(values, list), f"{what}[{name!r}] must be a list, got {type(values).__name__}")
        if name.startswith("batch_"):  # per-batch weights (batch_weights=True): one per batch, not per epoch
            for i, value in enumerate(values):
                record_field(FINITE, f"{what}[{name!r}][{i}]", value)
            continue
        check_record(len(values) == rows, f"{what}[{name!r}] has {len(values)} values, not one per epoch 0..{epochs}")
        spec = HISTORY_SPECS.get(name, Optional(FINITE))
        for i, value in enumerate(values):
            if i == 0 and name in NOT_BEFORE_TRAINING and (value is None or value != value):  # None or NaN
                continue
            record_field(spec, f"{what}[{name!r}][{i}]", value)


def _same(a, b):
    return a is None and b is None or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9,
                                                                                        abs_tol=1e-12))


@_schema
def check_summary(summary, history, config):
    """A run's summary: every number in range, and what it repeats of the history's last epoch the same."""
    sizes = dense_sizes(config.model)
    dense_weights = sum(kernel for kernel, _ in sizes.values())
    layers = [f"nnz/{layer}" for layer in sizes] + [f"pruned_fraction/{layer}" for layer in sizes]
    check_record_object(summary, "summary", ["epochs", "test_acc", "train_acc", "test_ce", "train_ce", "l1_dense",
                                             "nnz_dense", "dense_weights", "pruned_fraction_dense", "train_seconds",
                                             *layers])
    specs = {"epochs": Int(1), "test_acc": ACCURACY, "train_acc": Optional(ACCURACY), "test_ce": NON_NEGATIVE,
             "train_ce": Optional(NON_NEGATIVE), "l1_dense": NON_NEGATIVE, "nnz_dense": Int(0, dense_weights),
             "dense_weights": Int(0), "pruned_fraction_dense": Float(0.0, 1.0), "train_seconds": NON_NEGATIVE,
             "c1_last_epoch": Optional(FINITE), "c2_last_epoch": Optional(FINITE)}
    specs.update({f"nnz/{layer}": Int(0, kernel) for layer, (kernel, _) in sizes.items()})
    specs.update({f"pruned_fraction/{layer}": Float(0.0, 1.0) for layer in sizes})
    for name, value in summary.items():
        record_field(specs.get(name, Optional(FINITE)), f"summary[{name!r}]", value)
    check_record(summary["epochs"] == config.epochs, f"summary['epochs'] is {summary['epochs']}, not the config's "
                 f"{config.epochs} epochs")
    check_record(summary["dense_weights"] == dense_weights, f"summary['dense_weights'] is {summary['dense_weights']}, "
                 f"not the {dense_weights} dense weights of {config.model}")
    last = {"test_acc": history["test_accuracy"][-1], "test_ce": history["test_ce"][-1],
            "l1_dense": history["l1_dense"][-1], "train_acc": history.get("train_accuracy", [None])[-1],
            "train_ce": history.get("train_ce", [None])[-1],
            **{f"nnz/{layer}": history["nnz"][layer][-1] for layer in sizes}}
    for name, value in last.items():
        check_record(_same(summary[name], value), f"summary[{name!r}] is {summary[name]}, but the history's last "
                     f"epoch has {value}")
    nnz = sum(summary[f"nnz/{layer}"] for layer in sizes)
    check_record(summary["nnz_dense"] == nnz, f"summary['nnz_dense'] is {summary['nnz_dense']}, not the sum {nnz} of "
                 "its layers")
    fractions = {"pruned_fraction_dense": 1.0 - nnz / dense_weights,
                 **{f"pruned_fraction/{layer}": 1.0 - summary[f"nnz/{layer}"] / kernel
                    for layer, (kernel, _) in sizes.items()}}
    for name, fraction in fractions.items():
        check_record(_same(summary[name], fraction), f"summary[{name!r}] is {summary[name]}, not {fraction} (its "
                     "nonzeros)")


@_schema
def check_run_record(stored, key) -> RunConfig:
    """The schema of a finished run ``runs/<slug>-<key>.json``; returns its resolved ``RunConfig``."""
    check_record_object(stored, "the run record", RUN_KEYS)
    check_record(stored.get("status", "finished") == "finished", f"status is {stored.get('status')!r}, not "
                 "'finished': not a finished run")
    check_record(stored["key"] == key, f"key is {stored['key']!r}, not the file's key {key}")
    config = stored_config(stored["config"], key)
    if "dense_sizes" in stored:  # older records lack it
        sizes = {layer: kernel for layer, (kernel, _) in dense_sizes(config.model).items()}
        check_record(stored["dense_sizes"] == sizes, f"dense_sizes is {stored['dense_sizes']!r}, not {config.model}'s "
                     f"{sizes}")
    check_history(stored["history"], config, config.epochs)
    check_summary(stored["summary"], stored["history"], config)
    check_provenance(stored)
    return config


def check_provenance(stored):
    """``environment`` (optional) is an object of versions; ``backend`` (optional: older records
    lack it and are TensorFlow's) is a Keras backend, the same as the environment's;
    ``dataset_variant`` (optional) a non-empty name and ``dataset_hash`` (optional) 16 hex digits."""
    variant = stored.get("dataset_variant")
    check_record(variant is None or (isinstance(variant, str) and 0 < len(variant) <= 80),
                 f"dataset_variant must be a short non-empty str, got {variant!r:.80}")
    digest = stored.get("dataset_hash")
    check_record(digest is None or (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{16}", digest) is not None),
                 f"dataset_hash must be 16 hex digits, got {digest!r:.80}")
    environment = stored.get("environment")
    check_record(environment is None or (isinstance(environment, dict) and all(
        isinstance(v, (str, int)) or v is None for v in environment.values())),
        f"environment must be a JSON object of versions, got {environment!r:.80}")
    if "backend" in stored:
        backend = stored["backend"]
        check_record(backend in KERAS_BACKENDS, f"backend is {backend!r:.40}, not one of {KERAS_BACKENDS}")
        recorded = (environment or {}).get("backend")
        check_record(recorded is None or recorded == backend, f"backend is {backend!r}, but the environment "
                     f"says {recorded!r}")


@_schema
def check_failure_record(stored, key):
    """The schema of a failure record ``failed/<slug>-<key>.json``: status "failed", a known kind
    (or none: an older record, whose kind is read from its reason), a reason, an epoch within the
    run, and the configuration of the file's key."""
    check_record_object(stored, "the failure record", ("key", "status", "reason", "config"))
    check_record(stored["status"] == "failed", f"status is {stored['status']!r}, not 'failed'")
    check_record(stored["key"] == key, f"key is {stored['key']!r}, not the file's key {key}")
    config = stored_config(stored["config"], key)
    check_record(isinstance(stored["reason"], str) and stored["reason"], f"reason must be a non-empty str, got "
                 f"{stored['reason']!r}")
    check_record(stored.get("kind") is None or stored["kind"] in FAILURE_KINDS,
                 f"kind is {stored.get('kind')!r}, not one of {FAILURE_KINDS}")
    record_field(Optional(Int(0, config.epochs)), "epoch", stored.get("epoch"))
    check_record(isinstance(stored.get("history", {}), dict), "history must be a JSON object")
    check_provenance(stored)
    return config


def read_result(path: Path, from_cache=True):
    with open(path) as f:
        stored = json.load(f)
    return _result_from_stored(stored, path, from_cache)


def _result_from_stored(stored, path, from_cache=True):
    config = dict(stored["config"])
    if isinstance(config["weights"], list):
        config["weights"] = tuple(config["weights"])
    return RunResult(RunConfig(**config), stored["history"], stored["summary"], stored["key"], Path(path), from_cache,
                     stored.get("environment"), record_backend(stored), record_dataset_variant(stored),
                     stored.get("dataset_hash"))


def _measure(model, data, config, penalty):
    """Everything the paper plots about the current weights (one row of the history)."""
    row = {}
    test = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
    row["test_ce"], row["test_accuracy"] = float(test["ce"]), float(test["accuracy"])
    if data.x_val is not None:
        val = model.evaluate(data.x_val, data.y_val, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
        row["val_ce"], row["val_accuracy"] = float(val["ce"]), float(val["accuracy"])
    if config.eval_train:
        train = model.evaluate(data.x_train, data.y_train, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
        row["train_ce"], row["train_accuracy"] = float(train["ce"]), float(train["accuracy"])
    row["l1_dense"] = dense_l1(model)
    row["l1_dense_bias"] = dense_l1(model, include_bias=True) - row["l1_dense"]
    # The conv weight decay, reported apart so the faithful "loss1"/"loss2" axes (which
    # include it, B11) can be rebuilt: loss1 = ce + conv_l2, loss2 = l1_dense + conv_l2.
    row["conv_l2"] = _conv_l2(model)
    row["penalty"] = penalty.value(model) if penalty is not None else None
    counts = nonzero_counts(model)
    row["nnz"] = {name: k for name, (k, b, s) in counts.items()}
    row["nnz_bias"] = {name: b for name, (k, b, s) in counts.items()}
    return row


def _conv_l2(model):
    """Sum of lambda_c ||K||^2 of the conv layers, whatever other regularizers exist."""
    total = 0.0
    for layer in model.layers:
        reg = getattr(layer, "kernel_regularizer", None)
        if isinstance(layer, keras.layers.Conv2D) and reg is not None:
            total += float(keras.ops.convert_to_numpy(reg(layer.kernel)))
    return total


def _append(history, row):
    for key, value in row.items():
        if isinstance(value, dict):
            group = history.setdefault(key, {})
            for name, v in value.items():
                group.setdefault(name, []).append(v)
        else:
            history.setdefault(key, []).append(value)


def _summary(history, sizes):
    last = {k: (v[-1] if isinstance(v, list) else None) for k, v in history.items()}
    nnz = {name: values[-1] for name, values in history["nnz"].items()}
    dense_weights = int(sum(sizes.values()))
    nnz_dense = int(sum(nnz.values()))
    summary = {
        "epochs": len(history["epoch"]) - 1,
        "train_acc": last.get("train_accuracy"), "test_acc": last["test_accuracy"],
        "train_ce": last.get("train_ce"), "test_ce": last["test_ce"],
        "l1_dense": last["l1_dense"], "nnz_dense": nnz_dense, "dense_weights": dense_weights,
        "pruned_fraction_dense": 1.0 - nnz_dense / dense_weights,
        "c1_last_epoch": last.get("c1"), "c2_last_epoch": last.get("c2"),
        "train_seconds": float(np.nansum(np.array(history["epoch_seconds"], dtype=float))),
    }
    for name, value in nnz.items():
        summary[f"nnz/{name}"] = int(value)
        summary[f"pruned_fraction/{name}"] = 1.0 - value / sizes[name]
    return summary


@validated(recompute=Bool(), progress=Bool(), checkpoint=Bool(), batch_weights=Bool(), retry_failed=Bool())
def run_experiment(config: RunConfig, cache_dir=None, recompute=False, progress=True, checkpoint=True,
                   batch_weights=False, retry_failed=False) -> RunResult:
    """Train ``config`` (or return its cached result) and return the per-epoch history.

    Args:
        config: the run; validated before any work starts.
        cache_dir: cache root (default ``results/cache`` of the project).
        recompute: ignore and overwrite a cached result (or a failure record).
        progress: show a progress bar over epochs.
        checkpoint: save a resumable checkpoint after every epoch.
        batch_weights: also keep every batch's (c1, c2) in ``history["batch_c1"/"batch_c2"]``.
        retry_failed: train again a run recorded as failed (otherwise ``RunFailedError``).

    Raises:
        RunFailedError: the run diverged (non-finite loss or weights: checked after every epoch,
            before a checkpoint is written; ITP never hides a NaN) or its training raised, now
            or in an earlier call. The failure is recorded in ``failed/``, not in ``runs/``.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    config = config.resolved()
    key = config.key()
    store = ResultCache(cache_dir)
    cache_root = store.root
    if not recompute:
        cached = load_cached(config, cache_root)
        if cached is not None:
            return cached
        failed = find_failed(config, cache_root, sticky_only=True)  # an io failure is retried
        if failed is not None and not retry_failed:
            raise failed_error(config, failed)
    store.check_writable("runs", "failed", *(("partial",) if checkpoint else ()))  # before any training

    enable_determinism()
    data = _load_data(config.dataset, config.train_subset, config.validation_size, config.seed)
    variant = "multi" if config.is_multi else "baseline"
    lambda_conv = LAMBDA_CONV[config.model]
    model = build_model(config.model, variant, seed=config.seed, lambda_dense=config.lambda_dense or 0.0,
                        lambda_conv=lambda_conv)
    sizes = {layer.name: int(np.prod(layer.kernel.shape)) for layer in dense_layers(model)}
    before_itp = {name: k for name, (k, b, s) in nonzero_counts(model).items()}
    if config.itp:
        enable_itp(model, config.threshold, prune_now=True)
    n_train = len(data.x_train)
    if config.batch_size > n_train:
        raise ValueError(f"batch_size must be <= the {n_train} training images of {data.source}, got "
                         f"{config.batch_size}")
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    schedule = learning_rate_schedule(config, steps_per_epoch)
    optimizer = make_optimizer(config, model, learning_rate=schedule)
    penalty = SparsityObjective.from_model(model, conv_l2=config.conv_l2_in_penalty) if config.is_multi else \
        SparsityObjective.from_model(model, conv_l2=False)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalCrossentropy(name="ce"),
                           keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    optimizer.build(model.trainable_variables)

    partial = store.path("partial", store.run_name(config, ".npz"))
    history, start_epoch = None, 0
    if checkpoint and partial.exists() and not recompute:
        history, start_epoch = _restore(partial, model, optimizer, key, config)
    if history is None:
        history = {"epoch": [0], "lr": [_lr_value(optimizer, schedule, 0)], "epoch_seconds": [float("nan")]}
        if config.is_multi:
            history["c1"], history["c2"] = [None], [None]
        _append(history, _measure(model, data, config, penalty))
    if batch_weights:
        history.setdefault("batch_c1", []), history.setdefault("batch_c2", [])

    callbacks = [EpochTimer()]
    weights_logger = MultiGradientWeightsLogger(per_batch=batch_weights) if config.is_multi else None
    if weights_logger:
        callbacks.append(weights_logger)
    # Last, after the callbacks that add to the logs: a diverged epoch is never measured,
    # checkpointed or stored.
    callbacks.append(NonFiniteGuard())
    bar = _progress_bar(config, start_epoch) if progress else None
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            # Epoch e's data order depends on (seed, e) alone, so a resumed run is identical.
            order = np.random.default_rng([config.seed, epoch]).permutation(n_train)
            lr_start = _lr_value(optimizer, schedule, int(optimizer.iterations.numpy()))
            fit = model.fit(data.x_train[order], data.y_train[order], batch_size=config.batch_size,
                            epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0, callbacks=callbacks)
            logs = {k: v[-1] for k, v in fit.history.items()}
            row = {"epoch": epoch + 1, "lr": lr_start, "epoch_seconds": float(logs["epoch_seconds"])}
            if config.is_multi:
                row["c1"], row["c2"] = logs["c1"], logs["c2"]
            row.update(_measure(model, data, config, penalty))
            for name in ("test_ce", "train_ce", "val_ce"):
                if name in row and not math.isfinite(row[name]):
                    raise Diverged(f"{name} is {row[name]} (diverged)", epoch + 1)
            _append(history, row)
            if batch_weights and weights_logger:
                history["batch_c1"].extend(weights_logger.batch_c1)
                history["batch_c2"].extend(weights_logger.batch_c2)
                weights_logger.batch_c1, weights_logger.batch_c2 = [], []
            if checkpoint and epoch + 1 < config.epochs:
                _save_checkpoint(partial, model, optimizer, history, epoch + 1, key)
            if bar is not None:
                bar.set_postfix(test_acc=f"{row['test_accuracy']:.4f}", dense_nnz=sum(row["nnz"].values()),
                                refresh=False)
                bar.update(1)
    except Diverged as exc:
        # The checkpoint holds the epochs that led to the divergence: a retry starts from the
        # initial weights, not from them.
        partial.unlink(missing_ok=True)
        raise _failure(store, config, key, "diverged", exc.reason, epoch + 1, history, data) from None
    except OSError as exc:  # the disk, permissions, a missing folder: not the run's fault, retried next time
        raise _failure(store, config, key, "io", f"I/O error: {type(exc).__name__}: {exc}", epoch + 1, history,
                       data) from exc
    except Exception as exc:  # training raised: a record too (KeyboardInterrupt is not: the run resumes)
        raise _failure(store, config, key, "raised", f"training raised {type(exc).__name__}: {exc}", epoch + 1,
                       history, data) from exc
    finally:
        if bar is not None:
            bar.close()

    history["nnz_before_itp"] = before_itp
    summary = _summary({k: v for k, v in history.items() if k != "nnz_before_itp"}, sizes)
    stored = {
        "key": key, "status": "finished", "config": config.to_dict(), "summary": summary, "history": history,
        "dataset_variant": data.variant, "dataset_hash": data.content_hash, "dense_sizes": sizes,
        "backend": keras.backend.backend(), "environment": environment(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        path = store.write_json("runs", store.run_name(config), stored)
    except OSError as exc:
        raise _failure(store, config, key, "io", f"I/O error writing the finished run: {type(exc).__name__}: {exc}",
                       config.epochs, history, data) from exc
    partial.unlink(missing_ok=True)  # missing_ok: a concurrent identical run may have removed it
    store.path("failed", store.run_name(config)).unlink(missing_ok=True)  # a retried failure succeeded
    return RunResult(config, history, summary, key, path, from_cache=False, environment=stored["environment"],
                     backend=stored["backend"], dataset_variant=data.variant, dataset_hash=data.content_hash)


def _failure(store, config, key, kind, reason, epoch, history, data) -> RunFailedError:
    """Record the failure of ``kind`` in ``failed/`` and return its ``RunFailedError``. The record
    is written if it can be: after an io failure the disk may refuse it too (then ``path`` is None)."""
    try:
        path = store.write_json("failed", store.run_name(config), {
            "key": key, "status": "failed", "kind": kind, "reason": reason, "epoch": epoch, "config": config.to_dict(),
            "history": history, "dataset_variant": data.variant, "dataset_hash": data.content_hash,
            "backend": keras.backend.backend(), "environment": environment(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    except OSError as exc:
        path, reason = None, f"{reason} (the failure record could not be written either: {exc})"
    return RunFailedError(config.slug(), reason, epoch, path, kind=kind)


def _lr_value(optimizer, schedule, step):
    """The learning rate at ``step``: the schedule's own value (the paper's, in float64) or the
    optimizer's current rate (a constant one, as the optimizer holds it)."""
    if isinstance(schedule, PaperSchedule):
        return schedule.value(step)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _progress_bar(config, start):
    return tqdm(total=config.epochs, initial=start, desc=config.slug(), unit="epoch", leave=False)


def _save_checkpoint(path, model, optimizer, history, epochs_done, key=None):
    arrays = {f"model_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"opt_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    arrays["meta"] = np.array(json.dumps({"history": history, "epochs_done": epochs_done, "key": key}))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write(path, write)


def _restore(path, model, optimizer, key=None, config=None):
    """``(history, epochs_done)`` restored from the checkpoint ``path``, or ``(None, 0)`` if it is
    unreadable, belongs to another configuration or fails the checkpoint's schema (then it is
    moved aside, with a warning, and nothing is restored).

    The schema: ``epochs_done`` an int of finished epochs (with ``config``, fewer than its epochs: a
    finished run has no checkpoint), a history of exactly those epochs (``check_history``), arrays
    of the model's and optimizer's shapes, every one finite (a checkpoint is written only from
    finite weights)."""
    try:
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            model_arrays = [f[f"model_{i}"] for i in range(len(model.variables))]
            opt_arrays = [f[f"opt_{i}"] for i in range(len(optimizer.variables))]
            extra = len([k for k in f.files if k != "meta"]) - len(model_arrays) - len(opt_arrays)
        check_record_object(meta, "the checkpoint's meta", ("history", "epochs_done"))
        stored_key = meta.get("key")
        if key is not None and stored_key is not None and stored_key != key:  # older checkpoints have no key
            raise RecordError(f"checkpoint of another configuration (key {stored_key}, this run's is {key})")
        maximum = config.epochs - 1 if config is not None else None
        epochs_done = record_field(Int(1, maximum), "epochs_done", meta["epochs_done"])
        history = meta["history"]
        if config is not None:
            check_history(history, config, epochs_done)
        else:
            check_record_object(history, "history", ("epoch",))
            check_record(history["epoch"] == list(range(epochs_done + 1)),
                         f"history['epoch'] must be the epochs 0..{epochs_done}, got {history['epoch']!r:.120}")
        variables = [*model.variables, *optimizer.variables]
        for variable, value in zip(variables, [*model_arrays, *opt_arrays]):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{variable.path} has shape {tuple(variable.shape)}, the checkpoint {value.shape}")
        if extra:
            raise ValueError(f"{extra} more arrays than the model and optimizer have")
        reason = non_finite_values(zip([v.path for v in variables], [*model_arrays, *opt_arrays]))
        if reason:
            raise RecordError(f"{reason}: a checkpoint is written only from finite weights")
    except Exception as exc:  # BadZipFile, EOFError, KeyError, ValueError, OSError, RecordError, ...
        quarantine(path, str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}")
        return None, 0
    for variable, value in zip([*model.variables, *optimizer.variables], [*model_arrays, *opt_arrays]):
        variable.assign(value)
    return history, epochs_done


def _main(argv):
    """``python -m helpers.runner CONFIG_JSON CACHE_DIR [--recompute]``: one run into the cache."""
    config = json.loads(argv[0])
    if isinstance(config.get("weights"), list):
        config["weights"] = tuple(config["weights"])
    run_experiment(RunConfig(**config), cache_dir=argv[1], recompute="--recompute" in argv[2:], progress=False)


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])

"""Cached, resumable experiment runner: one call trains one fully described configuration.

A run is a pure function of its resolved ``RunConfig``: the model's initial weights come
from the seed alone (the same for every optimizer), the data order of epoch e from
``(seed, e)``, and dropout's random state is part of the checkpointed model variables. So
results are keyed by the configuration, and a sweep can be spread over processes or
machines: ``run_sweep(configs, executor=...)`` with a Dask cluster (``dask_executor``) or any
``concurrent.futures`` executor; the runs share nothing but the cache folder, whose files are
written atomically.

* Finished runs: ``results/cache/runs/<dataset>-<optimizer>-...-<key>.json`` (small, committed).
* Unfinished runs: a checkpoint after every epoch in ``results/cache/partial/`` (ignored by
  git); an interrupted run resumes from its last finished epoch with identical numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from . import data as data_lib
from .callbacks import EpochTimer, MultiGradientWeightsLogger
from .models import LAMBDA_CONV, LAMBDA_DENSE, PAPER_MODEL, build_model, dense_layers
from .objectives import DensePenalty, dense_l1
from .optimizers import SCALARIZATIONS, SEPARATE, MAdam, MRMSprop, RMSpropKeras2, SMGD
from .cache import atomic_write, default_cache_dir, write_json
from .pruning import enable_itp, nonzero_counts
from .runtime import enable_determinism
from .schedules import PaperSchedule

# Bump when a change alters the numbers a configuration produces; old cache files then miss.
CACHE_VERSION = 1

MULTI_OPTIMIZERS = ("smgd", "madam", "mrmsprop")
BASELINE_OPTIMIZERS = ("sgd", "adam", "rmsprop")
OPTIMIZERS = MULTI_OPTIMIZERS + BASELINE_OPTIMIZERS
PROTOCOLS = ("faithful", "clean")
LR_SCHEDULES = ("paper", "constant")
PAPER_MODELS = ("lenet5", "vgg")
EVAL_BATCH = 1000


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run. ``None`` fields are resolved from the
    paper's protocol (REPRODUCTION_NOTES.md §6.1) by ``resolved()``; the cache key uses resolved values.

    Attributes:
        dataset: ``mnist``, ``fashion_mnist`` or ``cifar10``.
        optimizer: ``smgd``, ``madam``, ``mrmsprop`` (multi-objective, on the "multi" model)
            or ``sgd``, ``adam``, ``rmsprop`` (Keras baselines on the L1-regularised model).
        itp: intra-training pruning of the dense layers (initial prune + every batch).
        epochs, batch_size, seed: as usual; batch 32 (MNIST) / 64 (CIFAR) by default.
        learning_rate: eta0; default 1e-3 for Adam-type and RMSprop-type, 1e-2 for SGD-type.
        weights: ``"min-norm"`` or fixed ``(lambda1, lambda2)`` (weighted sum; multi only).
        scalarization: how MAdam / MRMSprop combine the objectives: ``"separate"`` (the published
            code: one moment stream per objective) or ``"joint"`` (one stream on c1 g1 + c2 g2,
            which minimises the weighted sum; see ``helpers.optimizers``). SMGD is linear, so
            both are the same update and resolve to ``"separate"`` (one cache entry).
        lr_schedule: ``"paper"`` (logistic S(e) and decay as in the paper's table) or
            ``"constant"`` (the search scripts: no schedule, no decay).
        protocol: ``"faithful"`` reproduces the original code including its quirks (B3, B5,
            B11); ``"clean"`` fixes them.
        threshold: ITP threshold tau.
        train_subset: train on a seeded class-stratified subset of this size.
        validation_size: hold out the last N training images as a validation split (B22).
        eval_train: evaluate on the full training set every epoch (the paper's train curves).
        model: ``lenet5`` or ``vgg``; default: the paper's model for the dataset.
        momentum, decay, logistic, conv_l2_in_penalty, lambda_dense: protocol details,
            resolved from the protocol unless given.
    """

    dataset: str = "mnist"
    optimizer: str = "madam"
    itp: bool = True
    epochs: int = 30
    seed: int = 0
    learning_rate: float | None = None
    batch_size: int | None = None
    weights: str | tuple = "min-norm"
    scalarization: str = "separate"
    lr_schedule: str = "paper"
    protocol: str = "faithful"
    threshold: float = 1e-3
    train_subset: int | None = None
    validation_size: int = 0
    eval_train: bool = True
    model: str | None = None
    momentum: float | None = None
    decay: float | None = None
    logistic: bool | None = None
    conv_l2_in_penalty: bool | None = None
    lambda_dense: float | None = None

    @property
    def is_multi(self):
        return self.optimizer in MULTI_OPTIMIZERS

    def resolved(self) -> "RunConfig":
        """Validate every field and fill the protocol defaults; raises ValueError early."""
        dataset = data_lib.check_dataset_name(self.dataset)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.threshold >= 0:
            raise ValueError(f"ITP threshold must be >= 0, got {self.threshold}")
        cifar = dataset == "cifar10"
        model = self.model or PAPER_MODEL.get(dataset, "lenet5")
        if model not in PAPER_MODELS:
            raise ValueError(f"the runner trains the paper's models {PAPER_MODELS}, got {model!r}")
        if (model == "vgg") != cifar:
            raise ValueError(f"model {model!r} does not fit dataset {dataset!r} (lenet5: 28x28 grey, vgg: CIFAR-10)")

        weights = self.weights
        if isinstance(weights, str):
            if weights != "min-norm":
                raise ValueError(f"weights must be 'min-norm' or (lambda1, lambda2), got {weights!r}")
        else:
            weights = tuple(float(w) for w in weights)
            if len(weights) != 2 or min(weights) < 0 or sum(weights) == 0:
                raise ValueError(f"fixed weights must be two non-negative numbers, not both 0; got {self.weights!r}")
            if not self.is_multi:
                raise ValueError(f"fixed weights are for the multi-objective optimizers, not {self.optimizer!r}")

        if self.scalarization not in SCALARIZATIONS:
            raise ValueError(f"unknown scalarization {self.scalarization!r}; choose one of {', '.join(SCALARIZATIONS)}")
        if self.scalarization != SEPARATE and not self.is_multi:
            raise ValueError(f"scalarization is for the multi-objective optimizers, not {self.optimizer!r}")
        # SMGD is linear in the gradient: "joint" and "separate" are the same update.
        scalarization = SEPARATE if self.optimizer == "smgd" else self.scalarization

        sgd_like = self.optimizer in ("smgd", "sgd")
        learning_rate = self.learning_rate
        if learning_rate is None:
            learning_rate = 1e-2 if sgd_like else 1e-3
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")

        batch_size = self.batch_size
        if batch_size is None:
            batch_size = 64 if cifar else 32
            # B3: the original's unpruned CIFAR sgd/rms runs forgot batch_size and got 32.
            if cifar and self.protocol == "faithful" and not self.itp and self.optimizer in ("sgd", "rmsprop"):
                batch_size = 32
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

        logistic, decay = self.logistic, self.decay
        if self.lr_schedule == "constant":
            logistic = False if logistic is None else logistic
            decay = 0.0 if decay is None else decay
        else:
            if logistic is None:
                # B5: the original gives CIFAR SMGD no logistic schedule, only decay.
                logistic = not (cifar and self.optimizer == "smgd" and self.protocol == "faithful")
            if decay is None:
                decay = learning_rate / self.epochs if sgd_like else 0.0
        momentum = self.momentum if self.momentum is not None else (0.9 if sgd_like else 0.0)
        conv_l2 = self.conv_l2_in_penalty
        if conv_l2 is None:
            conv_l2 = self.protocol == "faithful"  # B11
        lambda_dense = self.lambda_dense
        if lambda_dense is None:
            lambda_dense = 0.0 if self.is_multi else LAMBDA_DENSE[model]
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"train_subset must be >= 1 or None, got {self.train_subset}")
        if self.validation_size < 0:
            raise ValueError(f"validation_size must be >= 0, got {self.validation_size}")
        return dataclasses.replace(
            self, dataset=dataset, model=model, weights=weights, scalarization=scalarization, learning_rate=float(learning_rate),
            batch_size=batch_size, logistic=bool(logistic), decay=float(decay), momentum=float(momentum),
            conv_l2_in_penalty=bool(conv_l2), lambda_dense=float(lambda_dense), threshold=float(self.threshold))

    def to_dict(self):
        d = dataclasses.asdict(self)
        if isinstance(d["weights"], tuple):
            d["weights"] = list(d["weights"])
        return d

    def key(self):
        """Stable hash of the resolved configuration (and of CACHE_VERSION)."""
        config = self.resolved().to_dict()
        if config["scalarization"] == SEPARATE:
            del config["scalarization"]  # the field came later: separate runs keep their keys
        payload = json.dumps({"config": config, "cache_version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def slug(self):
        c = self.resolved()
        weights = "" if c.weights == "min-norm" else f"-w{c.weights[1]:.3g}"
        if c.scalarization != SEPARATE:
            weights += f"-{c.scalarization}"
        itp = "itp" if c.itp else "noitp"
        return f"{c.dataset}-{c.optimizer}{weights}-{itp}-e{c.epochs}-s{c.seed}"


@dataclass
class RunResult:
    config: RunConfig
    history: dict
    summary: dict
    key: str
    path: Path
    from_cache: bool
    environment: dict | None = None  # versions the run was made under (keras, backend, ...)

    def history_frame(self):
        """Per-epoch history as a pandas DataFrame (row 0 = before training)."""
        import pandas as pd

        columns = {k: v for k, v in self.history.items()
                   if not isinstance(v, dict) and not k.startswith("batch_")}  # per-batch lists are longer
        frame = pd.DataFrame(columns)
        for group in ("nnz", "nnz_bias"):
            for layer, values in self.history[group].items():
                frame[f"{group}/{layer}"] = values
        return frame


@functools.lru_cache(maxsize=2)
def _load_data(dataset, train_subset, validation_size, seed):
    return data_lib.load_dataset(dataset, train_subset=train_subset, validation_size=validation_size, seed=seed)


def make_optimizer(config: RunConfig, model, steps_per_epoch: int):
    """The optimizer a resolved config asks for, with the paper's learning-rate schedule."""
    c = config
    if c.logistic or c.decay:
        learning_rate = PaperSchedule(c.learning_rate, steps_per_epoch, c.epochs, decay=c.decay, logistic=c.logistic)
    else:
        learning_rate = c.learning_rate
    if c.is_multi:
        penalty = DensePenalty.from_model(model, conv_l2=c.conv_l2_in_penalty)
        if c.optimizer == "smgd":
            return SMGD(learning_rate, penalty, c.weights, momentum=c.momentum)
        if c.optimizer == "madam":
            return MAdam(learning_rate, penalty, c.weights, scalarization=c.scalarization)
        return MRMSprop(learning_rate, penalty, c.weights, scalarization=c.scalarization)
    if c.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=c.momentum)
    if c.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate, epsilon=1e-7)
    return RMSpropKeras2(learning_rate)


def find_cached(config: RunConfig, cache_dir=None):
    """Path of the finished run of ``config`` in the cache, or None."""
    runs = Path(cache_dir or default_cache_dir()) / "runs"
    matches = sorted(runs.glob(f"*-{config.key()}.json")) if runs.exists() else []
    return matches[0] if matches else None


def _result_from_file(path: Path, from_cache=True):
    with open(path) as f:
        stored = json.load(f)
    config = stored["config"]
    if isinstance(config["weights"], list):
        config["weights"] = tuple(config["weights"])
    return RunResult(RunConfig(**config), stored["history"], stored["summary"], stored["key"], path, from_cache,
                     stored.get("environment"))


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


def run_experiment(config: RunConfig, cache_dir=None, recompute=False, progress=True, checkpoint=True,
                   batch_weights=False) -> RunResult:
    """Train ``config`` (or return its cached result) and return the per-epoch history.

    Args:
        config: the run; validated before any work starts.
        cache_dir: cache root (default ``results/cache`` of the project).
        recompute: ignore and overwrite a cached result.
        progress: show a progress bar over epochs.
        checkpoint: save a resumable checkpoint after every epoch.
        batch_weights: also keep every batch's (c1, c2) in ``history["batch_c1"/"batch_c2"]``.
    """
    config = config.resolved()
    key = config.key()
    cache_root = Path(cache_dir or default_cache_dir())
    cached = find_cached(config, cache_root)
    if cached is not None and not recompute:
        return _result_from_file(cached)

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
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    optimizer = make_optimizer(config, model, steps_per_epoch)
    penalty = DensePenalty.from_model(model, conv_l2=config.conv_l2_in_penalty) if config.is_multi else \
        DensePenalty.from_model(model, conv_l2=False)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalCrossentropy(name="ce"),
                           keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    optimizer.build(model.trainable_variables)

    partial = cache_root / "partial" / f"{config.slug()}-{key}.npz"
    history, start_epoch = None, 0
    if checkpoint and partial.exists() and not recompute:
        history, start_epoch = _restore(partial, model, optimizer)
    if history is None:
        history = {"epoch": [0], "lr": [_lr_value(optimizer, 0)], "epoch_seconds": [float("nan")]}
        if config.is_multi:
            history["c1"], history["c2"] = [None], [None]
        _append(history, _measure(model, data, config, penalty))
    if batch_weights:
        history.setdefault("batch_c1", []), history.setdefault("batch_c2", [])

    callbacks = [EpochTimer()]
    weights_logger = MultiGradientWeightsLogger(per_batch=batch_weights) if config.is_multi else None
    if weights_logger:
        callbacks.append(weights_logger)
    bar = _progress_bar(config, start_epoch) if progress else None
    for epoch in range(start_epoch, config.epochs):
        # Epoch e's data order depends on (seed, e) alone, so a resumed run is identical.
        order = np.random.default_rng([config.seed, epoch]).permutation(n_train)
        lr_start = _lr_value(optimizer, int(optimizer.iterations.numpy()))
        fit = model.fit(data.x_train[order], data.y_train[order], batch_size=config.batch_size,
                        epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0, callbacks=callbacks)
        logs = {k: v[-1] for k, v in fit.history.items()}
        row = {"epoch": epoch + 1, "lr": lr_start, "epoch_seconds": float(logs["epoch_seconds"])}
        if config.is_multi:
            row["c1"], row["c2"] = logs["c1"], logs["c2"]
        row.update(_measure(model, data, config, penalty))
        _append(history, row)
        if batch_weights and weights_logger:
            history["batch_c1"].extend(weights_logger.batch_c1)
            history["batch_c2"].extend(weights_logger.batch_c2)
            weights_logger.batch_c1, weights_logger.batch_c2 = [], []
        if checkpoint and epoch + 1 < config.epochs:
            _save_checkpoint(partial, model, optimizer, history, epoch + 1)
        if bar is not None:
            bar.set_postfix(test_acc=f"{row['test_accuracy']:.4f}", dense_nnz=sum(row["nnz"].values()),
                            refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()

    history["nnz_before_itp"] = before_itp
    summary = _summary({k: v for k, v in history.items() if k != "nnz_before_itp"}, sizes)
    stored = {
        "key": key, "config": config.to_dict(), "summary": summary, "history": history,
        "dataset_variant": data.variant, "dense_sizes": sizes,
        "environment": environment(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = cache_root / "runs" / f"{config.slug()}-{key}.json"
    write_json(path, stored)
    if partial.exists():
        partial.unlink()
    return RunResult(config, history, summary, key, path, from_cache=False, environment=stored["environment"])


def environment() -> dict:
    """The versions a run is made under, recorded in every cached run."""
    env = {"keras": keras.__version__, "backend": keras.backend.backend(), "numpy": np.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    return env


# Versions whose change can move the numbers (cpu_count and the patch level of Python cannot).
COMPARED_VERSIONS = ("keras", "backend", "tensorflow", "numpy", "machine")


class EnvironmentMismatchWarning(UserWarning):
    """Cached runs were made under other versions than the running ones."""


def check_environments(results, warn=True) -> list:
    """Warn once if any of ``results`` was made under other versions than the running ones.

    Returns ``[(slug, {name: (recorded, running)})]`` for the runs that differ; only versions
    recorded by both are compared (older cache files lack ``tensorflow`` and ``numpy``).
    """
    running = environment()
    running["python"] = ".".join(platform.python_version_tuple()[:2])
    differing = []
    for r in results:
        recorded = dict(r.environment or {})
        if "python" in recorded:
            recorded["python"] = ".".join(str(recorded["python"]).split(".")[:2])
        diff = {k: (recorded[k], running[k]) for k in (*COMPARED_VERSIONS, "python")
                if k in recorded and k in running and str(recorded[k]) != str(running[k])}
        if diff:
            differing.append((r.config.slug(), diff))
    if differing and warn:
        import warnings

        kinds = sorted({f"{k} {a} (running {b})" for _, d in differing for k, (a, b) in d.items()})
        warnings.warn(f"{len(differing)} of {len(results)} cached runs were made under other versions: "
                      f"{', '.join(kinds)}; e.g. {differing[0][0]}. Their numbers may differ slightly from a rerun "
                      f"here (recompute=True retrains).", EnvironmentMismatchWarning, stacklevel=2)
    return differing


def dask_executor(workers: int = 2, address: str | None = None):
    """A Dask ``distributed.Client``: on a running scheduler at ``address`` (a cluster), else on a
    new ``LocalCluster`` of ``workers`` processes with one thread each (runs hold the GIL and
    TensorFlow's own thread pools; one process per core is the fast layout). Close it when done
    (``client.close()``; with a LocalCluster that also stops the cluster)."""
    from distributed import Client, LocalCluster

    if address:
        return Client(address)
    # One TensorFlow thread per worker process: concurrent workers with thread pools of their own
    # oversubscribe the cores and, with oneDNN, do not reproduce the sequential numbers.
    single = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=single)
    client = Client(cluster)
    client._mo_pruning_cluster = cluster  # closed with the client by run_sweep
    return client


def _as_executor(executor):
    """``(executor, owned)`` for what run_sweep accepts; ``owned`` ones are closed after the sweep."""
    if executor is None or executor is False or (isinstance(executor, int) and executor <= 0) or executor == "":
        return None, False
    if isinstance(executor, int):
        return dask_executor(workers=executor), True
    if isinstance(executor, str):
        return dask_executor(address=executor), True
    return executor, False


def run_isolated(config: RunConfig, cache_dir, recompute=False) -> RunResult:
    """``run_experiment`` in a fresh Python process, then its result read from the cache.

    What executors run: a worker process has threads of its own (Dask's event loop and
    scheduler client) that draw from Python's global ``random``, from which Keras derives its
    initializer seeds, so a run inside it would not reproduce the sequential numbers. A child
    process started for the run has no such threads.
    """
    import subprocess
    import sys

    config = config.resolved()
    command = [sys.executable, "-m", "helpers.runner", json.dumps(config.to_dict()), str(cache_dir)]
    if recompute:
        command.append("--recompute")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"run {config.slug()} failed:\n{done.stderr[-4000:]}")
    found = find_cached(config, cache_dir)
    if found is None:
        raise RuntimeError(f"run {config.slug()} finished without a cache file in {cache_dir}")
    return dataclasses.replace(_result_from_file(found), from_cache=False)


def _close(executor):
    cluster = getattr(executor, "_mo_pruning_cluster", None)
    executor.close()
    if cluster is not None:
        cluster.close()


def run_sweep(configs, cache_dir=None, recompute=False, progress=True, cached_only=False, executor=None,
              check_versions=True):
    """Run (or fetch from the cache) every config; an interrupted sweep resumes. Returns the
    results in config order.

    With ``cached_only`` nothing is trained: configs without a cached result are skipped (so
    figures can be drawn from a sweep that is still being computed elsewhere).

    ``executor`` spreads the runs that are not cached yet over processes or machines:

    * ``None`` or ``0`` (default): sequential, in this process;
    * an int n > 0: a Dask ``LocalCluster`` of n worker processes, closed afterwards;
    * a string: the address of a running Dask scheduler (``tcp://host:8786``), i.e. a cluster;
    * a ``distributed.Client`` or a ``concurrent.futures.Executor``: used as given (``submit``).

    Every worker writes to the same cache folder (resolved here, so it must be shared, e.g. a
    network file system on a cluster); files are written atomically. A run is a pure function
    of its configuration, so the results equal the sequential ones.
    """
    configs = [c.resolved() for c in configs]  # every config is validated before any training
    from .progress import tqdm

    cache_root = Path(cache_dir or default_cache_dir()).resolve()
    todo = [c for c in configs if not (cached_only and find_cached(c, cache_root) is None)]
    pool, owned = _as_executor(executor)
    if pool is None:
        results = []
        bar = tqdm(todo, desc="runs", disable=not progress)
        for config in bar:
            bar.set_postfix_str(config.slug(), refresh=True)
            results.append(run_experiment(config, cache_dir=cache_root, recompute=recompute, progress=progress))
    else:
        try:
            results = [None] * len(todo)
            pending = {}
            for i, config in enumerate(todo):
                found = None if recompute else find_cached(config, cache_root)
                if found is not None:
                    results[i] = _result_from_file(found)
                else:
                    pending[pool.submit(run_isolated, config, str(cache_root), recompute)] = i
            bar = tqdm(total=len(pending), desc=f"runs on {type(pool).__name__}", disable=not progress or not pending)
            for future, i in pending.items():  # in submission order; all run concurrently
                results[i] = future.result()
                bar.update(1)
            bar.close()
        finally:
            if owned:
                _close(pool)
    if check_versions:
        check_environments([r for r in results if r.from_cache])
    return results


def summary_frame(results):
    """One row per run: configuration columns then the summary columns."""
    import pandas as pd

    rows = []
    for r in results:
        c = r.config
        rows.append({"dataset": c.dataset, "optimizer": c.optimizer, "itp": c.itp, "seed": c.seed,
                     "learning_rate": c.learning_rate, "batch_size": c.batch_size,
                     "weights": c.weights if isinstance(c.weights, str) else f"{c.weights[0]:g},{c.weights[1]:g}",
                     "protocol": c.protocol, "train_subset": c.train_subset, **r.summary})
    return pd.DataFrame(rows)


def _lr_value(optimizer, step):
    lr = optimizer._learning_rate
    if isinstance(lr, PaperSchedule):
        return lr.value(step)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _progress_bar(config, start):
    from .progress import tqdm

    return tqdm(total=config.epochs, initial=start, desc=config.slug(), unit="epoch", leave=False)


def _save_checkpoint(path, model, optimizer, history, epochs_done):
    arrays = {f"model_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"opt_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    arrays["meta"] = np.array(json.dumps({"history": history, "epochs_done": epochs_done}))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write(path, write)


def _restore(path, model, optimizer):
    with np.load(path) as f:
        for i, v in enumerate(model.variables):
            v.assign(f[f"model_{i}"])
        for i, v in enumerate(optimizer.variables):
            v.assign(f[f"opt_{i}"])
        meta = json.loads(str(f["meta"]))
    return meta["history"], int(meta["epochs_done"])


def history_frame(results):
    """Long table of every run's per-epoch history: one row per (run, epoch), with the run's
    optimizer, itp, seed and learning rate as columns (for seaborn)."""
    import pandas as pd

    frames = []
    for r in results:
        frame = r.history_frame()
        frame.insert(0, "seed", r.config.seed)
        frame.insert(0, "itp", r.config.itp)
        frame.insert(0, "optimizer", r.config.optimizer)
        frame["dense_nnz"] = frame[[c for c in frame.columns if c.startswith("nnz/")]].sum(axis=1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _main(argv):
    """``python -m helpers.runner CONFIG_JSON CACHE_DIR [--recompute]``: one run into the cache."""
    config = json.loads(argv[0])
    if isinstance(config.get("weights"), list):
        config["weights"] = tuple(config["weights"])
    run_experiment(RunConfig(**config), cache_dir=argv[1], recompute="--recompute" in argv[2:], progress=False)


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])

"""Many runs at once: ``run_sweep`` runs (or fetches from the cache) a list of ``RunConfig``,
sequentially or spread over processes or machines (a Dask cluster, ``dask_executor``, or any
``concurrent.futures`` executor; each run in a fresh process, ``run_isolated``), and the tables and
labels of its results (``summary_frame``, ``history_frame``, ``dataset_label``, ``variant_note``).

A run is a pure function of its resolved configuration (``helpers.runner``), so the runs share
nothing but the cache folder, whose files are written atomically, and a distributed sweep gives the
sequential numbers.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from collections import Counter

import pandas as pd

from . import data as data_lib
from .cache import ResultCache
from .progress import tqdm
from .run_config import RunConfig
from .runner import (DEFAULT_BACKEND, RunFailedError, RunResult, failed_error, read_result, find_cached,
                     find_failed, load_cached, run_experiment)
from .runtime import check_environments
from .validation import Bool, validated


class SweepResults(list):
    """The finished runs of a sweep (a list of ``RunResult``, in config order), plus ``failed``
    (``RunFailedError`` of every failed run, left out of the list) and ``missing`` (configs
    skipped by ``cached_only``)."""

    def __init__(self, results=(), failed=(), missing=()):
        super().__init__(results)
        self.failed, self.missing = list(failed), list(missing)


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
    return dataclasses.replace(read_result(found), from_cache=False)


def _close(executor):
    cluster = getattr(executor, "_mo_pruning_cluster", None)
    executor.close()
    if cluster is not None:
        cluster.close()


@validated(recompute=Bool(), progress=Bool(), cached_only=Bool(), retry_failed=Bool(), check_versions=Bool())
def run_sweep(configs, cache_dir=None, recompute=False, progress=True, cached_only=False, retry_failed=False,
              executor=None, check_versions=True):
    """Run (or fetch from the cache) every config; an interrupted sweep resumes. Returns the
    finished runs in config order.

    With ``cached_only`` nothing is trained: configs without a cached result are skipped (so
    figures can be drawn from a sweep that is still being computed elsewhere).

    A failed run (now or recorded earlier) is not a result: it is left out of the returned list,
    listed in its ``failed`` attribute and in a warning, and the sweep goes on; it is retried
    only with ``retry_failed`` or ``recompute``. Raises if no run at all can be returned.

    ``executor`` spreads the runs that are not cached yet over processes or machines:

    * ``None`` or ``0`` (default): sequential, in this process;
    * an int n > 0: a Dask ``LocalCluster`` of n worker processes, closed afterwards;
    * a string: the address of a running Dask scheduler (``tcp://host:8786``), i.e. a cluster;
    * a ``distributed.Client`` or a ``concurrent.futures.Executor``: used as given (``submit``).

    Every worker writes to the same cache folder (resolved here, so it must be shared, e.g. a
    network file system on a cluster); files are written atomically. A run is a pure function
    of its configuration, so the results equal the sequential ones.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("run_sweep got no configs (an empty list of seeds, optimizers or weightings?)")
    for i, config in enumerate(configs):
        if not isinstance(config, RunConfig):
            raise TypeError(f"configs[{i}] must be a RunConfig, got {type(config).__name__}")
    configs = [c.resolved() for c in configs]  # every config is validated before any training

    cache_root = ResultCache(cache_dir).root.resolve()
    store = ResultCache(cache_root)
    if not cached_only:
        store.check_writable("runs", "failed", "partial")
    results = SweepResults()
    todo = []  # configs to run (or fetch) in this process or on the executor
    for config in configs:
        if cached_only and not recompute:
            cached = load_cached(config, cache_root)
            if cached is not None:
                results.append(cached)
            elif find_failed(config, cache_root) is not None:
                results.failed.append(failed_error(config, find_failed(config, cache_root)))
            else:
                results.missing.append(config)
        else:
            todo.append(config)
    pool, owned = _as_executor(executor) if todo else (None, False)
    if pool is None:
        bar = tqdm(todo, desc="runs", disable=not progress or not todo)
        for config in bar:
            bar.set_postfix_str(config.slug(), refresh=True)
            try:
                results.append(run_experiment(config, cache_dir=cache_root, recompute=recompute, progress=progress,
                                              retry_failed=retry_failed))
            except RunFailedError as exc:
                results.failed.append(exc)
    else:
        try:
            done, pending = {}, {}
            for i, config in enumerate(todo):
                found = None if recompute else find_cached(config, cache_root)
                failed = None if recompute or retry_failed else find_failed(config, cache_root, sticky_only=True)
                if found is not None:
                    done[i] = read_result(found)
                elif failed is not None:
                    results.failed.append(failed_error(config, failed))
                else:
                    pending[pool.submit(run_isolated, config, str(cache_root), recompute or retry_failed)] = i
            bar = tqdm(total=len(pending), desc=f"runs on {type(pool).__name__}", disable=not progress or not pending)
            for future, i in pending.items():  # in submission order; all run concurrently
                try:
                    done[i] = future.result()
                except RuntimeError:
                    failed = find_failed(todo[i], cache_root)
                    if failed is None:
                        raise
                    results.failed.append(failed_error(todo[i], failed))
                bar.update(1)
            bar.close()
            results.extend(done[i] for i in sorted(done))
        finally:
            if owned:
                _close(pool)
    if results.failed:
        warnings.warn(f"{len(results.failed)} of {len(configs)} runs FAILED and are left out of the results "
                      "(retry with retry_failed=True): " + "; ".join(str(e) for e in results.failed),
                      RuntimeWarning, stacklevel=2)
    if not results:
        if cached_only and results.missing:
            raise LookupError(f"cached_only=True, but none of the {len(configs)} runs is in the cache {cache_root} "
                              "(train them first: cached_only=False)")
        raise RuntimeError(f"every run of the sweep failed: {'; '.join(str(e) for e in results.failed)}")
    if check_versions:
        check_environments([r for r in results if r.from_cache])
    return results


def summary_frame(results):
    """One row per run: configuration columns then the summary columns."""
    rows = []
    for r in results:
        c = r.config
        rows.append({"dataset": c.dataset, "optimizer": c.optimizer, "itp": c.itp, "seed": c.seed,
                     "learning_rate": c.learning_rate, "batch_size": c.batch_size,
                     "weights": c.weights if isinstance(c.weights, str) else f"{c.weights[0]:g},{c.weights[1]:g}",
                     "protocol": c.protocol, "train_subset": c.train_subset,
                     "backend": getattr(r, "backend", DEFAULT_BACKEND), **r.summary})
    return pd.DataFrame(rows)


def history_frame(results):
    """Long table of every run's per-epoch history: one row per (run, epoch), with the run's
    optimizer, itp, seed and learning rate as columns (for seaborn)."""
    frames = []
    for r in results:
        frame = r.history_frame()
        frame.insert(0, "seed", r.config.seed)
        frame.insert(0, "itp", r.config.itp)
        frame.insert(0, "optimizer", r.config.optimizer)
        frame["dense_nnz"] = frame[[c for c in frame.columns if c.startswith("nnz/")]].sum(axis=1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def dataset_label(results, dataset=None) -> str:
    """The label of the data ``results`` were made on, from the runs themselves: ``"CIFAR-10
    (jpeg-q75 stand-in)"``, ``"MNIST"``, or with runs on several variants ``"CIFAR-10 (official: 3
    runs; jpeg-q75 stand-in: 5 runs)"``. ``dataset`` names it when there are no runs."""
    names = {r.config.dataset for r in results} or {dataset or "mnist"}
    if len(names) > 1:
        return "; ".join(dataset_label([r for r in results if r.config.dataset == n]) for n in sorted(names))
    [name] = names
    counts = Counter(r.dataset_variant for r in results)
    if len(counts) <= 1:
        return data_lib.dataset_label(name, next(iter(counts), data_lib.OFFICIAL))
    parts = "; ".join(f"{variant}: {n} run{'s' * (n != 1)}" for variant, n in sorted(counts.items()))
    return f"{data_lib.PRETTY_NAMES[name]} ({parts})"


def variant_note(results) -> str | None:
    """A sentence when ``results`` were made on another data variant than the one this machine would
    load now (``helpers.data.file_variant``), e.g. cached stand-in runs on a machine with the
    official CIFAR-10: they are still shown, labelled with their own variant. None otherwise."""
    others = {}
    for r in results:
        loaded = data_lib.file_variant(r.config.dataset)
        if r.dataset_variant != loaded:
            others.setdefault((r.config.dataset, loaded), []).append(r)
    if not others:
        return None
    return " ".join(
        f"NOTE: {len(runs)} of these runs were made on {dataset_label(runs)}, but this machine would load "
        f"{data_lib.dataset_label(name, loaded)}; they are shown as made, labelled with their own data "
        "(a run's data variant is recorded, not part of its cache key)."
        for (name, loaded), runs in others.items())

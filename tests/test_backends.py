"""The pruning API on the JAX backend gives what it gives on TensorFlow (README.md, "Pruning any Keras model"):
GMP, group masks kept during fit with ITP, strip and compact, from the same initial weights and
data; and notebook 03's CIFAR-10 protocol path runs under JAX into the cache TensorFlow reads.
Each backend in its own process (Keras picks its backend at import)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("backend_worker.py")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_pruning_agrees_on_tensorflow_and_jax(tmp_path):
    results = {}
    for backend in ("tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        subprocess.run([sys.executable, str(WORKER), str(tmp_path / f"{backend}.npz"), str(tmp_path / "init.npz")],
                       check=True, env=env, cwd=WORKER.parent.parent, capture_output=True, timeout=600)
        results[backend] = np.load(tmp_path / f"{backend}.npz")
    tf, jax = results["tensorflow"], results["jax"]
    for key in ("gmp_hidden", "gmp_block"):  # same masks, same weights up to float rounding
        np.testing.assert_array_equal(tf[key] == 0, jax[key] == 0)
        np.testing.assert_allclose(tf[key], jax[key], atol=1e-5)
    assert tf["masked_pruned_nonzero"] == jax["masked_pruned_nonzero"] == 0  # masks held in-graph on both
    np.testing.assert_array_equal(tf["stem_mask"], jax["stem_mask"])
    assert tf["compact_diff"] <= 1e-6 and jax["compact_diff"] <= 1e-6
    np.testing.assert_array_equal(tf["compact_kept"], jax["compact_kept"])
    np.testing.assert_allclose(tf["compact_outputs"], jax["compact_outputs"], atol=1e-5)
    # masks replaced in place: the new ones hold, and the channels the old ones pruned train again
    assert tf["replaced_pruned_nonzero"] == jax["replaced_pruned_nonzero"] == 0
    assert tf["replaced_freed_nonzero"] > 0 and jax["replaced_freed_nonzero"] > 0


PROTOCOL_WORKER = Path(__file__).with_name("protocol_worker.py")


@pytest.mark.slow
@pytest.mark.needs_data("cifar10")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_cifar_protocol_runs_on_jax_into_the_tensorflow_cache(tmp_path):
    """Notebook 03's CIFAR-10 path (``smgd_comparison("cifar10")`` -> ``run_sweep``) under
    ``KERAS_BACKEND=jax`` on tiny parameters: the records it writes name the backend and are the
    cache hits of the same configs on TensorFlow (same keys, same files, same tables), which is
    how runs made on a GPU join the cache and the tables made here."""
    import warnings

    import keras

    from helpers import experiments
    from helpers.runner import check_run_record, load_cached
    from helpers.sweep import run_sweep
    from helpers.runtime import EnvironmentMismatchWarning

    cache = tmp_path / "cache"
    # TensorFlow blocked in the worker: the GPU machines have JAX and not TensorFlow
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", BLOCK_TENSORFLOW="1")
    done = subprocess.run([sys.executable, str(PROTOCOL_WORKER), str(cache), str(tmp_path / "jax.json")],
                          env=env, cwd=PROTOCOL_WORKER.parent.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    jax = json.loads((tmp_path / "jax.json").read_text())
    assert jax["backend"] == "jax" and jax["run_backends"] == jax["summary_backend"] == ["jax"] * 3
    assert not any(jax["from_cache"]) and jax["label"] == "Keras backend jax"
    assert not jax["tensorflow_imported"]  # the whole path runs where only JAX is installed

    assert keras.backend.backend() == "tensorflow"  # this process reads them back on TensorFlow
    configs = experiments.smgd_comparison("cifar10", ["smgd", "mrmsprop", "rmsprop"], "on", 1, (0,),
                                          train_subset=128)
    assert [c.key() for c in configs] == jax["keys"]  # the key does not depend on the backend
    assert sorted(p.name for p in (cache / "runs").iterdir()) == sorted(jax["files"])
    for config in configs:
        stored = json.loads(next((cache / "runs").glob(f"*-{config.key()}.json")).read_text())
        assert stored["backend"] == stored["environment"]["backend"] == "jax"
        assert "backend" not in stored["config"]
        check_run_record(stored, config.key())  # valid on TensorFlow
        cached = load_cached(config, cache)
        assert cached is not None and cached.backend == "jax"
    with warnings.catch_warnings(record=True) as caught:  # cached_only: nothing is trained here
        warnings.simplefilter("always")
        results = run_sweep(configs, cache_dir=cache, cached_only=True, progress=False)
    assert [r.key for r in results] == jax["keys"] and all(r.from_cache for r in results)
    mismatch = [str(w.message) for w in caught if issubclass(w.category, EnvironmentMismatchWarning)]
    assert mismatch and "backend jax (running tensorflow)" in mismatch[0]
    summary = experiments.comparison_summary(results)  # the table notebook 03 writes
    assert summary["backend"].tolist() == ["jax"] * 3
    assert summary["test_acc"].tolist() == jax["test_acc"] and summary["nnz_dense"].tolist() == jax["nnz_dense"]
    assert experiments.backend_label(results) == "Keras backend jax"

"""The pruning API on the JAX backend gives what it gives on TensorFlow (issue 19, item 5):
GMP, group masks kept during fit with ITP, strip and compact, from the same initial weights and
data; each backend in its own process (Keras picks its backend at import)."""

import importlib.util
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

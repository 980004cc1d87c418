"""Shared test set-up: quiet TensorFlow, offline data, a throwaway cache."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The checkout's sibling shared/data holds the offline datasets on the project's machines.
_shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if "PRUNING_DATA_DIR" not in os.environ and _shared.exists():
    os.environ["PRUNING_DATA_DIR"] = str(_shared)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_images(rng):
    """A small MNIST-shaped batch with labels, for optimizer and ITP tests."""
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype("int32")
    return x, y

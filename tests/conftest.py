"""Fixtures of the unit tests (environment set-up is in the root conftest.py)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_images(rng):
    """A small MNIST-shaped batch with labels, for optimizer and ITP tests."""
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype("int32")
    return x, y

"""Fixtures of the unit tests (environment set-up is in the root conftest.py).

Tests that need a real dataset are marked ``@pytest.mark.needs_data("mnist", ...)`` (or call the
``require_data`` fixture); without the data they are skipped with one short reason instead of
failing with a long download traceback.
"""

import functools

import numpy as np
import pytest

from helpers.data import NO_DATA  # noqa: E402  (the one reason every test and nbval cell without data gives)


@functools.lru_cache(maxsize=None)
def _unavailable(name):
    from helpers import data

    return data.unavailable_reason(name)


def skip_without_data(*names):
    if any(_unavailable(name) for name in names or ("mnist",)):
        pytest.skip(NO_DATA)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_data(*datasets): skip unless these datasets can be loaded offline")


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs_data"):
        skip_without_data(*marker.args)


@pytest.fixture
def require_data():
    """``require_data("mnist", "cifar10")`` skips the test unless those datasets can be loaded."""
    return skip_without_data


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_images(rng):
    """A small MNIST-shaped batch with labels, for optimizer and ITP tests."""
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype("int32")
    return x, y


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """64 random 28x28 images as "mnist" (every ``load_dataset`` call returns them), with the
    project root moved to ``tmp_path`` so the model cache starts empty there."""
    from helpers import data as data_lib

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = (np.arange(64) % 10).astype("int32")
    fake = data_lib.Dataset("mnist", "official", "fake", x, y, x[:16], y[:16])
    monkeypatch.setattr(data_lib, "load_dataset", lambda *a, **k: fake)
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    return fake

"""pytest set-up shared by tests/ and the nbval run over notebooks/.

The data folder needs no set-up here: ``helpers.paths.data_dir`` resolves ``$PRUNING_DATA_DIR``,
else ``../shared/data`` beside the checkout, else ``keras.datasets``.

Tests never write over tracked files: figures and result tables go to a temporary folder
(``$MOPRUNE_OUTPUT_DIR``) for the whole session, nbval's kernels included; the committed
``results/cache`` is still read (a complete cache means nothing is trained).
"""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_OUTPUT_ENV = "MOPRUNE_OUTPUT_DIR"
_created = []


def pytest_configure(config):
    if _OUTPUT_ENV not in os.environ:
        path = tempfile.mkdtemp(prefix="mo-pruning-test-outputs-")
        os.environ[_OUTPUT_ENV] = path
        _created.append(path)


def pytest_unconfigure(config):
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(_OUTPUT_ENV, None)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """64 random 28x28 images as "mnist" (every ``load_dataset`` call returns them), with the
    project root moved to ``tmp_path`` so the model cache starts empty there."""
    import numpy as np

    from helpers import data as data_lib

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = (np.arange(64) % 10).astype("int32")
    fake = data_lib.Dataset("mnist", "official", "fake", x, y, x[:16], y[:16])
    monkeypatch.setattr(data_lib, "load_dataset", lambda *a, **k: fake)
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path))
    return fake

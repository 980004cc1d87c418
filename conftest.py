"""pytest set-up shared by tests/ and the nbval run over notebooks/.

The data folder needs no set-up here: ``helpers.paths.data_dir`` resolves ``$PRUNING_DATA_DIR``,
else ``../shared/data`` beside the checkout, else ``keras.datasets``.

Tests never write over tracked files: figures and result tables go to a temporary folder
(``$MOPRUNE_OUTPUT_DIR``) for the whole session, nbval's kernels included; the committed
``results/cache`` is still read (a complete cache means nothing is trained).

nbval compares outputs through ``notebooks/nbval_sanitize.cfg`` (durations, progress bars,
temporary paths) unless another ``--nbval-sanitize-with`` file is given.
"""

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_OUTPUT_ENV = "MOPRUNE_OUTPUT_DIR"
_created = []


SANITIZE = Path(__file__).resolve().parent / "notebooks" / "nbval_sanitize.cfg"


def pytest_configure(config):
    if hasattr(config.option, "nbval_sanitize_with") and not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(SANITIZE)
    if _OUTPUT_ENV not in os.environ:
        path = tempfile.mkdtemp(prefix="mo-pruning-test-outputs-")
        os.environ[_OUTPUT_ENV] = path
        _created.append(path)


def pytest_unconfigure(config):
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(_OUTPUT_ENV, None)

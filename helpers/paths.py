"""Where things live: the project root (cache, committed outputs), where outputs are written,
the offline data folder and the notebooks. Every entry point (notebooks, Makefile, CI, tests)
resolves these the same way, here.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "MOPRUNE_ROOT"          # project root: results/cache, committed figures/ and results/
OUTPUT_ENV = "MOPRUNE_OUTPUT_DIR"  # where figures/ and results/ tables are written (default: the root)
DATA_DIR_ENV = "PRUNING_DATA_DIR"  # offline datasets (mnist.npz, fashion-mnist.npz, cifar10*.npz)


def source_root() -> Path:
    """The folder that contains the ``helpers`` package (a checkout with an editable install)."""
    return Path(__file__).resolve().parents[1]


def _is_checkout(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "helpers").is_dir()


def project_root(root=None) -> Path:
    """``root`` if given, else ``$MOPRUNE_ROOT`` if set, else the checkout that contains ``helpers``.

    With the editable install (``pip install -e .``, what the Makefile, CI and Binder do) that is
    the checkout, so notebooks find ``results/cache`` whatever their cwd. With a plain install
    (``pip install git+...`` on Colab) there is no checkout: the current directory is used.
    """
    value = root or os.environ.get(ROOT_ENV)
    if value:
        return Path(value).expanduser().resolve()
    source = source_root()
    return source if _is_checkout(source) else Path.cwd().resolve()


def output_root() -> Path:
    """Where ``figures/`` and result tables are written: ``$MOPRUNE_OUTPUT_DIR``, else the project root.

    The tests point it at a temporary folder, so they read the committed cache but never write
    over tracked files.
    """
    value = os.environ.get(OUTPUT_ENV)
    return Path(value).expanduser().resolve() if value else project_root()


def data_dir() -> Path | None:
    """The offline data folder: ``$PRUNING_DATA_DIR``, else ``../shared/data`` beside the checkout
    (the project's machines) when it exists, else None (``helpers.data`` then downloads through
    ``keras.datasets``)."""
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    source = source_root()
    shared = source.parent / "shared" / "data"
    if _is_checkout(source) and shared.is_dir():
        return shared
    return None


def notebooks_dir() -> Path:
    """The numbered notebooks (their parameters cells define the default parameters)."""
    for candidate in (source_root() / "notebooks", project_root() / "notebooks"):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def display_path(path) -> str:
    """``path`` relative to the output root (or the project root) when inside it, for messages."""
    path = Path(path)
    for base in (output_root(), project_root()):
        try:
            return str(path.resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)

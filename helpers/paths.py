"""Where the project's outputs live (figures/, results/)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "MOPRUNE_ROOT"


def project_root(root=None) -> Path:
    """``root`` if given, else ``$MOPRUNE_ROOT`` if set, else the folder that contains ``helpers``.

    With the editable install (``pip install -e .``, what the Makefile does) that is the
    checkout, so notebooks write ``figures/`` and ``results/`` there whatever their cwd.
    """
    value = root or os.environ.get(ROOT_ENV)
    return Path(value).expanduser().resolve() if value else Path(__file__).resolve().parents[1]

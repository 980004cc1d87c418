"""The one cache of results: finished runs, failure records, checkpoints, tables and trained
weights, under one root (``results/cache`` of the project by default), owned by ``ResultCache``.

Layout (every name ends in the configuration's key, so a changed key is a miss, never a wrong hit):

- ``runs/<slug>-<key>.json``: finished training runs (``helpers.runner``; small, committed);
- ``failed/<slug>-<key>.json``: failure records, never results;
- ``partial/<slug>-<key>.npz``: checkpoints of unfinished runs (ignored by git);
- ``tables/<name>-<hash>.json``: computed tables (``cached``; committed);
- ``models/<model>-<dataset>-<hash>.weights.h5``: trained weights (``helpers.experiments.trained_model``;
  ignored by git).

Every write goes to a unique temporary file in the target's folder and is renamed onto the
target (``os.replace``), so concurrent writers of one key never collide: the last rename wins
and a reader sees a whole file. A cache file that cannot be read (truncated, not JSON, a bad
archive) is named in a ``CorruptCacheWarning``, moved aside to ``<name>.corrupt-<time>`` (never
deleted) and treated as missing, so it is recomputed. The folders a computation will write are
checked writable before it starts (``check_writable``), so a result is never lost after the work.
The module functions (``atomic_write``, ``quarantine``, ``read_json``, ``write_json``) are those
primitives, also used for files outside the cache (checkpoints of a search, decoded data).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

from .paths import project_root
from .validation import check_writable


def default_cache_dir() -> Path:
    return project_root() / "results" / "cache"


def config_hash(config: dict, version=1) -> str:
    payload = json.dumps({"config": config, "cache_version": version}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class CorruptCacheWarning(UserWarning):
    """A cache file could not be read; it was moved aside and will be recomputed."""


def quarantine(path: Path, reason) -> Path | None:
    """Move the unreadable cache file ``path`` aside (``<name>.corrupt-<time>``) and warn."""
    path = Path(path)
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, target)
    except FileNotFoundError:  # another process moved it already
        target = None
    warnings.warn(f"cache file {path} is unreadable ({reason}); "
                  + (f"moved to {target.name} and recomputing" if target else "recomputing"),
                  CorruptCacheWarning, stacklevel=3)
    return target


def read_json(path: Path, required=()):
    """The JSON object in ``path``, or None (after ``quarantine``) if it is missing keys or unreadable."""
    path = Path(path)
    try:
        with open(path) as f:
            value = json.load(f)
        if required and not (isinstance(value, dict) and all(k in value for k in required)):
            raise ValueError(f"missing keys {[k for k in required if k not in value]}"
                             if isinstance(value, dict) else "not a JSON object")
        return value
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # JSONDecodeError is a ValueError
        quarantine(path, f"{type(exc).__name__}: {exc}")
        return None


def atomic_write(path: Path, write, suffix=".tmp"):
    """Call ``write(tmp_path)`` on a unique temporary file beside ``path``, then rename it onto
    ``path``. ``suffix`` ends the temporary name (Keras wants ``.weights.h5``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, obj):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
    atomic_write(path, write)


class ResultCache:
    """The cache folder ``root`` (default ``results/cache`` of the project): where each kind of
    result lives and how it is read and written (see the module docstring for the layout)."""

    KINDS = ("runs", "failed", "partial", "tables", "models")

    def __init__(self, root=None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, kind, name) -> Path:
        if kind not in self.KINDS:
            raise ValueError(f"cache kind must be one of {self.KINDS}, got {kind!r}")
        return self.root / kind / name

    @staticmethod
    def run_name(config, suffix=".json") -> str:
        """The file name of the ``helpers.runner.RunConfig`` ``config`` in runs/, failed/ and
        (``suffix=".npz"``) partial/."""
        return f"{config.slug()}-{config.key()}{suffix}"

    def table_path(self, name, config) -> Path:
        return self.path("tables", f"{name}-{config_hash(config)}.json")

    def find(self, kind, key, suffix=".json") -> list[Path]:
        """The files of ``kind`` whose name ends in ``-<key><suffix>``, sorted (none if the folder
        does not exist)."""
        folder = self.root / kind
        return sorted(folder.glob(f"*-{key}{suffix}")) if folder.exists() else []

    def check_writable(self, *kinds):
        """Raise now, before any work, if a result of these kinds could not be stored."""
        for kind in kinds or (None,):
            check_writable(self.root / kind if kind else self.root,
                           f"cache folder ({kind})" if kind else "results cache folder")

    def read_json(self, path, required=()):
        return read_json(path, required)

    def write_json(self, kind, name, obj) -> Path:
        path = self.path(kind, name)
        write_json(path, obj)
        return path

    def load_weights(self, model, name):
        """Load ``models/<name>`` into ``model``: True if loaded, None if there is no such file,
        False if it was unreadable (then it is moved aside and ``model`` may be half-loaded)."""

        path = self.path("models", name)
        if not path.exists():
            return None
        try:
            with warnings.catch_warnings():  # the compiled optimizer's slots are not needed: no warning
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(path)
            return True
        except Exception as exc:  # a truncated or foreign weights file
            quarantine(path, f"{type(exc).__name__}: {exc}")
            return False

    def save_weights(self, model, name) -> Path:
        path = self.path("models", name)
        # A unique temporary name per call: concurrent identical calls each write their own file
        # and the last rename wins (they hold the same weights).
        atomic_write(path, model.save_weights, suffix=".weights.h5")
        return path

    def table(self, name, config, compute, recompute=False):
        """``(value, from_cache)`` of the table ``name`` for ``config`` (see ``cached``)."""
        path = self.table_path(name, config)
        if path.exists() and not recompute:
            stored = read_json(path, required=("value",))
            if stored is not None:
                return stored["value"], True
        self.check_writable("tables")
        value = compute()
        write_json(path, {"name": name, "config": config, "value": value})
        return value, False


def cached(name: str, config: dict, compute, recompute=False, cache_dir=None):
    """Return ``(value, from_cache)``: the stored value of ``compute()`` for this ``config``.

    ``compute`` must return JSON-serialisable data; the file is
    ``<cache_dir>/tables/<name>-<hash>.json`` and records the configuration beside the value.
    """
    return ResultCache(cache_dir).table(name, config, compute, recompute)

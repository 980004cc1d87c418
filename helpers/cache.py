"""The one cache of results: finished runs, failure records, checkpoints, tables and trained
weights, under one root (``results/cache`` of the project by default), owned by ``ResultCache``.

Layout (every name ends in the configuration's key, so a changed key is a miss, never a wrong hit):

- ``runs/<slug>-<key>.json``: finished training runs (``helpers.runner``; small, committed);
- ``failed/<slug>-<key>.json``: failure records, never results;
- ``partial/<slug>-<key>.npz``: checkpoints of unfinished runs (committed between sessions while a
  long run is under way; the run deletes its checkpoint when it finishes);
- ``tables/<name>-<hash>.json``: computed tables (``cached``; committed);
- ``models/<model>-<dataset>-<hash>.weights.h5``: trained weights (``helpers.experiments.trained_model``;
  ignored by git).

Every write goes to a unique temporary file in the target's folder and is renamed onto the
target (``os.replace``), so concurrent writers of one key never collide: the last rename wins
and a reader sees a whole file. Temporary files a killed writer left behind are removed when the
cache opens, once they are ``ORPHAN_AGE_SECONDS`` old (a younger one may be a live writer's).

A record is valid or it is not a record: every kind is checked against its schema on every read
(types, finiteness, ranges, and that the stored configuration hashes to the file's key; the run,
failure and checkpoint schemas are in ``helpers.runner``, the table schema is ``check_table_record``,
trained weights must be finite). A cache file that cannot be read (truncated, not JSON, a bad
archive) or fails its schema is named in a ``CorruptCacheWarning`` with the reason, moved aside to
``<name>.corrupt-<time>-<pid>-<n>`` (never deleted) and treated as missing, so it is recomputed.
The folders a computation will write are checked writable before it starts (``check_writable``),
so a result is never lost after the work. These primitives (``atomic_write``, ``quarantine``,
``read_json``, ``write_json``, ``check_writable``) live in ``helpers.files``, also used for files
outside the cache (checkpoints of a search, decoded data, tables, notebooks).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import warnings
from pathlib import Path

import numpy as np

from .files import (CorruptCacheWarning, RecordError, atomic_write, check_record,  # noqa: F401 (the cache's names)
                    check_record_object, check_writable, quarantine, read_json, remove_orphans, write_json)
from .paths import project_root


def default_cache_dir() -> Path:
    return project_root() / "results" / "cache"


def config_hash(config: dict, version=1) -> str:
    payload = json.dumps({"config": config, "cache_version": version}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def record_field(spec, name, value):
    """``spec(name, value)`` (a ``helpers.validation`` spec) with its TypeError / ValueError as a ``RecordError``."""
    try:
        return spec(name, value)
    except (TypeError, ValueError) as exc:
        raise RecordError(str(exc)) from None


def check_finite_json(value, name="value"):
    """Every number in the JSON data ``value`` is finite (None stands for a missing number)."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite_json(v, f"{name}[{k!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite_json(v, f"{name}[{i}]")
    elif isinstance(value, float):
        check_record(math.isfinite(value), f"{name} is {value}: a non-finite number is never a stored result")
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise RecordError(f"{name} is an int too large for a float") from None


def non_finite_values(named_arrays):
    """Why a set of weights is unusable (the first array with a NaN or an infinity), or None.
    ``named_arrays`` yields ``(name, array)``; arrays that are not floating point are skipped."""
    for name, value in named_arrays:
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return f"{int(np.count_nonzero(~np.isfinite(value)))} non-finite values in {name}"
    return None


_opened, _opened_lock = set(), threading.Lock()


class ResultCache:
    """The cache folder ``root`` (default ``results/cache`` of the project): where each kind of
    result lives and how it is read and written (see the module docstring for the layout)."""

    KINDS = ("runs", "failed", "partial", "tables", "models")

    def __init__(self, root=None):
        self.root = Path(root) if root else default_cache_dir()
        with _opened_lock:  # once per folder and process: the cache is opened for every lookup
            first = self.root not in _opened
            _opened.add(self.root)
        if first:
            remove_orphans(self.root, self.KINDS)

    def path(self, kind, name) -> Path:
        if kind not in self.KINDS:
            raise ValueError(f"cache kind must be one of {self.KINDS}, got {kind!r}")
        return self.root / kind / name

    @staticmethod
    def run_name(config, suffix=".json") -> str:
        """The file name of the ``helpers.run_config.RunConfig`` ``config`` in runs/, failed/ and
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
        False if it was unreadable or not finite (then it is moved aside and ``model`` may be
        half-loaded)."""

        path = self.path("models", name)
        if not path.exists():
            return None
        try:
            with warnings.catch_warnings():  # the compiled optimizer's slots are not needed: no warning
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(path)
        except Exception as exc:  # a truncated or foreign weights file
            quarantine(path, f"{type(exc).__name__}: {exc}")
            return False
        reason = non_finite_values((v.path, v.numpy()) for v in model.weights)
        if reason:  # a NaN-poisoned network is never a cached result
            quarantine(path, f"{reason}: the weights are not finite")
            return False
        return True

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
            key = config_hash(config)
            stored = read_json(path, check=lambda stored: check_table_record(stored, name, key))
            if stored is not None:
                return stored["value"], True
        self.check_writable("tables")
        value = compute()
        # What could not be read back is never written: a non-finite number is an error now, not
        # a file quarantined and recomputed on every later read.
        check_table_value(value, f"table {name!r}: value")
        write_json(path, {"name": name, "config": config, "value": value})
        return value, False


def check_table_value(value, name="value"):
    check_record(isinstance(value, (dict, list)), f"{name} must be a JSON object or list, got {type(value).__name__}")
    check_finite_json(value, name)


def check_table_record(stored, name, key):
    """The schema of a stored table ``tables/<name>-<key>.json``: its name, a configuration that
    hashes to ``key``, and a value (an object or a list) whose numbers are all finite."""
    check_record_object(stored, "the table record", ("name", "config", "value"))
    check_record(stored["name"] == name, f"name is {stored['name']!r}, not {name!r}: the record of another table")
    check_record(isinstance(stored["config"], dict), "config must be a JSON object")
    stored_key = config_hash(stored["config"])
    check_record(stored_key == key, f"config hashes to {stored_key}, not to the file's key {key}")
    check_table_value(stored["value"])


def cached(name: str, config: dict, compute, recompute=False, cache_dir=None):
    """Return ``(value, from_cache)``: the stored value of ``compute()`` for this ``config``.

    ``compute`` must return JSON-serialisable data; the file is
    ``<cache_dir>/tables/<name>-<hash>.json`` and records the configuration beside the value.
    """
    return ResultCache(cache_dir).table(name, config, compute, recompute)

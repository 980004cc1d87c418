"""Result caching shared by the runner and the notebooks: JSON files keyed by a configuration's
hash, written atomically (a crash never leaves a half-written file), under ``results/cache``.

Every write goes to a unique temporary file in the target's folder and is renamed onto the
target (``os.replace``), so concurrent writers of one key never collide: the last rename wins
and a reader sees a whole file. A cache file that cannot be read (truncated, not JSON, a bad
archive) is named in a ``CorruptCacheWarning``, moved aside to ``<name>.corrupt-<time>`` (never
deleted) and treated as missing, so it is recomputed.
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


def cached(name: str, config: dict, compute, recompute=False, cache_dir=None):
    """Return ``(value, from_cache)``: the stored value of ``compute()`` for this ``config``.

    ``compute`` must return JSON-serialisable data; the file is
    ``<cache_dir>/tables/<name>-<hash>.json`` and records the configuration beside the value.
    """
    path = Path(cache_dir or default_cache_dir()) / "tables" / f"{name}-{config_hash(config)}.json"
    if path.exists() and not recompute:
        stored = read_json(path, required=("value",))
        if stored is not None:
            return stored["value"], True
    value = compute()
    write_json(path, {"name": name, "config": config, "value": value})
    return value, False

"""Result caching shared by the runner and the notebooks: JSON files keyed by a configuration's
hash, written atomically (a crash never leaves a half-written file), under ``results/cache``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .paths import project_root


def default_cache_dir() -> Path:
    return project_root() / "results" / "cache"


def config_hash(config: dict, version=1) -> str:
    payload = json.dumps({"config": config, "cache_version": version}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def atomic_write(path: Path, write):
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
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
        with open(path) as f:
            return json.load(f)["value"], True
    value = compute()
    write_json(path, {"name": name, "config": config, "value": value})
    return value, False

"""Files written whole or not at all, read back or moved aside: the package's file primitives.

A leaf module (the standard library only), used by the results cache (``helpers.cache``), the
decoded-data cache (``helpers.data``), run checkpoints (``helpers.runner``), result tables, executed
notebooks and the benchmark scripts.

- ``atomic_write(path, write)`` calls ``write(tmp)`` on a unique temporary file in the target's
  folder and renames it onto the target (``os.replace``), so concurrent writers of one path never
  collide: the last rename wins and a reader sees a whole file. ``write_text``, ``write_bytes`` and
  ``write_json`` are its usual forms.
- ``read_json(path, required, check)`` returns the JSON object in ``path``, or None when there is
  none; a file that cannot be read or fails its schema is ``quarantine``\\ d: named in a
  ``CorruptCacheWarning`` with the reason and moved aside to ``<name>.corrupt-<time>-<pid>-<n>``
  (never deleted), so the caller treats it as missing and recomputes it.
- ``check_writable(folder)`` makes sure, before any work, that results can be written there.
- ``remove_orphans(root, kinds)`` removes the temporary files a killed writer left behind, once they
  are ``ORPHAN_AGE_SECONDS`` old (a younger one may be a live writer's).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path


class CorruptCacheWarning(UserWarning):
    """A cache file could not be read or is not a valid record; it was moved aside and will be recomputed."""


class RecordError(ValueError):
    """A stored record that is not what its kind must be (the message names the field and why)."""


def check_record(condition, message):
    """Raise ``RecordError(message)`` unless ``condition``."""
    if not condition:
        raise RecordError(message)


def check_record_object(value, name, required=()):
    """``value`` is a dict (a JSON object) that has the keys ``required``."""
    check_record(isinstance(value, dict), f"{name} must be a JSON object, got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    check_record(not missing, f"{name} misses the keys {missing}")
    return value


# Quarantine names are unique within a process (the counter) and across processes (the pid), even
# for two quarantines of one file name in the same second.
_quarantines = itertools.count()


def quarantine(path: Path, reason) -> Path | None:
    """Move the unusable cache file ``path`` aside (``<name>.corrupt-<time>-<pid>-<n>``) and warn,
    naming it and ``reason``."""
    path = Path(path)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{next(_quarantines)}")
    while target.exists():  # a pid reused within the second
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{next(_quarantines)}")
    try:
        os.replace(path, target)
    except FileNotFoundError:  # another process moved it already
        target = None
    warnings.warn(f"cache file {path} cannot be used ({reason}); "
                  + (f"moved to {target.name} and recomputing" if target else "recomputing"),
                  CorruptCacheWarning, stacklevel=3)
    return target


def read_json(path: Path, required=(), check=None):
    """The JSON object in ``path``, or None (after ``quarantine``) if it is unreadable, misses the
    keys ``required`` or fails ``check(value)`` (a schema: raises ``RecordError`` saying why)."""
    path = Path(path)
    try:
        with open(path) as f:
            value = json.load(f)
        if required:
            check_record_object(value, "the record", required)
        if check is not None:
            check(value)
        return value
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # JSONDecodeError and RecordError are ValueErrors
        quarantine(path, str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}")
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


def write_text(path: Path, text: str, newline=None):
    """Write ``text`` to ``path`` atomically (``newline`` as ``open`` takes it)."""
    def write(tmp):
        with open(tmp, "w", newline=newline) as f:
            f.write(text)
    atomic_write(path, write)


def write_bytes(path: Path, data: bytes):
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: Path, obj):
    """Write ``obj`` as JSON (one-space indent) to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
    atomic_write(path, write)


def check_writable(folder, what="folder"):
    """Make sure, now and not after training, that files can be written in ``folder``: raise
    ``NotADirectoryError`` or ``PermissionError`` naming it otherwise.

    Symlinks are resolved first (a symlink to a missing folder is not a writable folder: writes
    through it would fail after the work) and a missing folder is created, with its parents, so
    the check is the first write; then a unique temporary file is created there and removed.
    Returns ``folder``."""
    folder = Path(folder)
    try:
        target = folder.resolve()  # follows symlinks, dangling ones too; raises on a loop
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise NotADirectoryError(f"the {what} {folder} cannot be created: its path is a symlink loop "
                                 f"({type(exc).__name__}: {exc})") from exc
    shown = f"{folder} (-> {target})" if target != folder.absolute() else str(folder)
    blocking = next((p for p in [target, *target.parents] if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise NotADirectoryError(f"the {what} {shown} cannot be created: {blocking} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".write-check-", suffix=".tmp")
        os.close(fd)
        os.remove(tmp)
    except OSError as exc:
        raise PermissionError(f"the {what} {shown} is not writable ({type(exc).__name__}: {exc}); "
                              "results would be lost after the work: fix the permissions or point the "
                              "project elsewhere (MOPRUNE_ROOT)") from exc
    return folder


# A temporary file of ``atomic_write`` (``.<target name>.<8 random characters><suffix>``, mkstemp's
# names) or of ``check_writable``'s probe.
_TEMPORARY = re.compile(r"^(\..+\.[a-z0-9_]{8}(\.tmp|\.weights\.h5)|\.write-check-[a-z0-9_]{8}\.tmp)$")
# A writer renames its temporary file within seconds of its last write, so one older than this was
# left by a killed process; a younger one may belong to a live writer and is left alone.
ORPHAN_AGE_SECONDS = 600


def remove_orphans(root: Path, kinds, age=ORPHAN_AGE_SECONDS) -> list[Path]:
    """Remove the temporary files older than ``age`` seconds in ``root`` and its ``kinds``
    folders; returns them."""
    removed, now = [], time.time()
    for folder in [root, *(root / kind for kind in kinds)]:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no such folder (yet)
            continue
        for entry in entries:
            if not _TEMPORARY.match(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > age:
                    os.remove(entry.path)
                    removed.append(Path(entry.path))
            except OSError:  # renamed or removed meanwhile
                continue
    return removed

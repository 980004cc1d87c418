"""The one shape of the studies of notebooks 05-08 (``KneeSearch``, ``PostTraining``,
``StructureStudy``, ``BudgetPruning``).

A study is a frozen dataclass of its settings. Each setting is declared with ``setting(spec,
default)``: the spec (``helpers.validation``) stands beside the field, and every setting is
checked, and normalised, when the study is built, before any data is loaded or network trained.
Checks that relate several settings go in ``check()``.

Each result of a study is one cache table whose configuration is ``config(**point)``: the
settings that are part of the key (``setting(..., key=False)`` for those that are not, such as
``recompute``) with the result's own coordinates (``point``: a dataset, a budget, ...), passed
through ``legacy()``. ``legacy`` is the one explicit place where a study keeps the keys of results
cached before a setting existed (it drops the setting while it has its old value), so every
committed result keeps hitting. ``key(**point)`` is the hash naming that table's file;
``cached(table, compute, **point)`` reads it or computes and stores it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..cache import ResultCache, cached, config_hash


def setting(spec, default=dataclasses.MISSING, key=True):
    """A study's field checked by ``spec`` when the study is built; ``key=False``: not part of
    its results' cache keys."""
    return dataclasses.field(default=default, metadata={"spec": spec, "key": key})


def state(factory=dict):
    """A study's working state (its pre-trained networks, by name): not a setting, not compared."""
    return dataclasses.field(default_factory=factory, init=False, repr=False, compare=False, metadata={"key": False})


@dataclass(frozen=True)
class Study:
    """Base of the studies: checked settings (``setting``), one cache configuration per result."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            spec = field.metadata.get("spec")
            if spec is not None:  # frozen: the normalised value is set past the dataclass' guard
                object.__setattr__(self, field.name, spec(field.name, getattr(self, field.name)))
        self.check()

    def check(self):
        """Checks that relate several settings (each setting's own spec has passed)."""

    def settings(self) -> dict:
        """The settings that are part of every result's cache key."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.metadata.get("key", True)}

    def legacy(self, config: dict) -> dict:
        """Keep the keys of results cached before a setting existed (default: nothing to keep)."""
        return config

    def config(self, **point) -> dict:
        """The cache configuration of the result at ``point``."""
        return self.legacy(dict(self.settings(), **point))

    def key(self, **point) -> str:
        """The hash that names the result's cache file (``tables/<table>-<key>.json``)."""
        return config_hash(self.config(**point))

    def cached(self, table, compute, cached_only=False, cache_dir=None, **point):
        """``(value, from the cache?)`` of the result at ``point``: read from the cache, else
        ``compute()``d and stored; ``(None, False)`` with ``cached_only`` when it is not cached."""
        config = self.config(**point)
        if cached_only and not ResultCache(cache_dir).table_path(table, config).exists():
            return None, False
        return cached(table, config, compute, recompute=getattr(self, "recompute", False), cache_dir=cache_dir)

"""Canonical outputs only from canonical runs.

A notebook's committed figures (``figures/<notebook>/``) and tables (``results/<notebook>/``) are
what it produces on its **default** parameters, the values in its ``parameters`` cell (plus the
few second configurations whose records are committed, the ``variants`` of its entry in
``helpers.notebooks.manifest``). A run with other
parameters writes under ``figures/<notebook>/variants/<slug>/`` and
``results/<notebook>/variants/<slug>/`` instead (ignored by git), the slug naming the differing
parameters, e.g. ``cnn_width-0.5``. Parameters that do not change any number (``recompute``,
``save_outputs``, ``workers``, ...) are not compared.

Each notebook's check cell, right after its parameters, chooses (``for_notebook``, through
``helpers.notebooks.parameters.check_notebook_parameters``)::

    outputs = check_notebook_parameters(globals(), "02_data_and_models")

and the notebook writes through ``plotting.savefig(fig, name, outputs.figures_dir())`` and
``outputs.results_dir()`` / ``outputs.save_table(frame, name)``. The choice lives in that object
only, never in module state.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..files import atomic_write
from .manifest import NOTEBOOKS

# Parameters that change how a run is done, not what it computes.
NON_RESULT_PARAMETERS = frozenset({"recompute", "cached_only", "save_outputs", "workers", "scheduler",
                                   "run_missing"})


def canonical_variants(notebook: str) -> list[dict]:
    """The differing parameters of each canonical variant of ``notebook`` (its manifest entry)."""
    entry = NOTEBOOKS.get(notebook)
    return [variant.parameters for variant in entry.variants] if entry else []


def parameter_defaults(notebook: str | Path) -> dict:
    """``{name: default}`` of the literal assignments in a notebook's ``parameters`` cell."""
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = paths.notebooks_dir() / f"{path.name}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    defaults = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            defaults[target.id] = ast.literal_eval(node.value)
    return defaults


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (type(a) is type(b) and a == b)
    return a == b


def _slug_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_slug_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return "+".join(f"{k}_{_slug_value(v)}" for k, v in sorted(value.items())) or "none"
    return re.sub(r"[^A-Za-z0-9._]+", "_", f"{value:g}" if isinstance(value, float) else str(value))


def variant_slug(changed: dict) -> str:
    """Folder name for a set of non-default parameters: ``name-value`` pairs joined by ``__``."""
    slug = "__".join(f"{k}-{_slug_value(v)}" for k, v in sorted(changed.items()))
    if len(slug) > 80:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:10]
        slug = f"{slug[:60]}__{digest}"
    return slug


@dataclass
class NotebookOutputs:
    """Where one notebook run writes. ``changed`` holds the parameters that differ from the defaults."""

    notebook: str
    changed: dict = field(default_factory=dict)
    canonical: bool = True

    @property
    def slug(self) -> str | None:
        return None if self.canonical else variant_slug(self.changed)

    def _dir(self, kind: str) -> Path:
        base = paths.output_root() / kind / self.notebook
        return base if self.canonical else base / "variants" / self.slug

    def figures_dir(self, notebook: str | None = None) -> Path:
        return self._dir("figures") if notebook in (None, self.notebook) else paths.output_root() / "figures" / notebook

    def results_dir(self, notebook: str | None = None, create: bool = True) -> Path:
        """The folder for this run's result tables (created unless ``create=False``)."""
        folder = self._dir("results") if notebook in (None, self.notebook) else paths.output_root() / "results" / notebook
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def save_table(self, frame, name: str) -> Path:
        """Write a pandas table as ``<results folder>/<name>.csv`` (atomically) and return the path."""
        path = self.results_dir() / f"{name}.csv"
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
        return path

    def describe(self) -> str:
        if self.canonical:
            return f"default parameters: outputs in figures/{self.notebook}/ and results/{self.notebook}/"
        changed = ", ".join(f"{k}={v!r}" for k, v in sorted(self.changed.items()))
        return (f"non-default parameters ({changed}): outputs go to figures/{self.notebook}/variants/{self.slug}/ "
                f"and results/{self.notebook}/variants/{self.slug}/, not over the committed ones")


def for_notebook(notebook: str, namespace: dict, defaults: dict | None = None, verbose: bool = True) -> NotebookOutputs:
    """Compare the run's parameters (``namespace``, the notebook's ``globals()``) with the defaults
    of its parameters cell: the returned object's ``figures_dir()`` and ``results_dir()`` are
    where this run writes.

    Without the notebook file (a notebook opened alone, e.g. on Colab) nothing committed can be
    overwritten, and the run writes to the canonical folders of its own project root.
    """
    if defaults is None:
        try:
            defaults = parameter_defaults(notebook)
        except (FileNotFoundError, StopIteration):
            defaults = {}
    changed = {name: namespace[name] for name, default in defaults.items()
               if name not in NON_RESULT_PARAMETERS and name in namespace and not _same(namespace[name], default)}
    canonical = not changed or any(
        changed.keys() == variant.keys() and all(_same(changed[k], v) for k, v in variant.items())
        for variant in canonical_variants(notebook))
    outputs = NotebookOutputs(notebook, changed, canonical)
    if verbose and not canonical:
        print(outputs.describe())
    return outputs

"""Notebook 07's tables carry the data they were computed on (README.md, "Data"): the committed ones, made
on the JPEG stand-in, keep their keys, are served (not recomputed) on a machine that has only the
official CIFAR-10 (here a fake official ``cifar10.npz``) and are labelled there as the stand-in,
with a line saying so; a table computed on the official data is keyed without the file name."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import data as data_lib
from helpers import experiments, paths
from helpers.cache import ResultCache, cached
from helpers.experiments import structure

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "results" / "cache" / "tables"
STAND_IN = "CIFAR-10 (jpeg-q75 stand-in)"
# Notebook 07's defaults (its parameters cell).
STUDY = dict(width=0.25, epochs=2, batch_size=4, learning_rate=1e-3, seed=0, train_subset=10_000)
SWEEP = dict(targets=[0.1, 0.3, 0.5, 0.6, 0.7, 0.9], retrain_epochs=1, gmp_epochs=2, retrain_batch=32,
             latency_batch=256, latency_repeats=10)
SWEEP_FILE, PER_LAYER_FILE = "structure_sweep-f177f9d8fd695724.json", "per_layer_sparsity-36310baf8b69b2b7.json"


def _official_folder(folder):
    """A data folder whose only CIFAR-10 is an official-looking ``cifar10.npz``: 10,000 random
    training images (notebook 07's subset size), 100 test images."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    np.savez(folder / "cifar10.npz", x_train=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8),
             y_train=(np.arange(10_000) % 10).reshape(-1, 1).astype("uint8"),
             x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
             y_test=(np.arange(100) % 10).astype("uint8"))
    return folder


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory):
    return _official_folder(tmp_path_factory.mktemp("official") / "data")


@pytest.fixture
def official_cifar(official_folder, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(official_folder))
    return official_folder


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(structure, "trained_model", lambda *a, **k: pytest.fail("trained a network"))
    monkeypatch.setattr(structure, "structure_sweep", lambda *a, **k: pytest.fail("recomputed the sweep"))
    monkeypatch.setattr(structure, "per_layer_sparsity", lambda *a, **k: pytest.fail("recomputed the table"))


def _value(name):
    return json.loads((TABLES / name).read_text())["value"]


def test_committed_stand_in_tables_are_served_and_labelled_on_a_machine_with_the_official_file(
        official_cifar, no_training):
    before = sorted(p.name for p in TABLES.iterdir())
    study = experiments.StructureStudy(**STUDY)
    assert study.variant == "official" and study.data.label == "CIFAR-10"  # what this machine would compute on
    assert "source" not in study.config() and study.config()["data_variant"] == "official"
    rows, hit = study.sweep(**SWEEP)
    assert hit and rows == _value(SWEEP_FILE)
    assert study.label("structure_sweep") == STAND_IN
    note = study.note("structure_sweep")
    assert note and f"were computed on {STAND_IN}, but this machine would load CIFAR-10;" in note
    table, hit = study.per_layer_sparsity(0.7)
    assert hit and table == _value(PER_LAYER_FILE) and study.label("per_layer_sparsity") == STAND_IN
    assert study.label() == STAND_IN and study.note() is not None
    summary, missing = experiments.project003_comparison(seeds=(0,))
    assert not missing and summary.attrs["data_label"] == STAND_IN
    assert "would load CIFAR-10;" in summary.attrs["note"]
    assert sorted(p.name for p in TABLES.iterdir()) == before  # nothing written beside them


@pytest.mark.needs_data("cifar10")
def test_on_the_stand_in_the_committed_keys_hit_with_no_note(no_training, monkeypatch):
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)  # ../shared/data: the stand-in
    study = experiments.StructureStudy(**STUDY)
    assert study.variant == data_lib.STAND_IN and study.config()["source"] == "cifar10-jpeg.npz"
    assert ResultCache().table_path("structure_sweep", study.sweep_config(**SWEEP)).name == SWEEP_FILE
    rows, hit = study.sweep(**SWEEP)
    assert hit and study.label("structure_sweep") == STAND_IN and study.note() is None
    summary, _ = experiments.project003_comparison(seeds=(0,))
    assert summary.attrs["data_label"] == STAND_IN and summary.attrs["note"] is None


def test_a_table_of_this_machines_data_is_preferred_and_keyed_without_the_file_name(official_cifar, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("MOPRUNE_ROOT", str(tmp_path / "root"))  # an empty cache
    monkeypatch.setattr(structure, "trained_model", lambda *a, **k: (None, None))
    computed = []

    def fake_sweep(model, data, targets, **kwargs):
        computed.append(data.variant)
        return [{"method": "dense", "test_acc": 0.25}]

    monkeypatch.setattr(structure, "structure_sweep", fake_sweep)
    base = structure.StructureStudy(**STUDY).settings()
    extra = dict(SWEEP, gmp=structure.StructureStudy.GMP_SEMANTICS)
    cached("structure_sweep", dict(base, source="cifar10-jpeg.npz", **extra), lambda: [{"method": "stand-in"}])

    study = experiments.StructureStudy(**STUDY)
    assert study.sweep(**SWEEP) == ([{"method": "stand-in"}], True) and not computed
    assert study.label("structure_sweep") == STAND_IN and study.note("structure_sweep")

    again = experiments.StructureStudy(**STUDY, recompute=True)  # computed here, on the official data
    assert again.sweep(**SWEEP) == ([{"method": "dense", "test_acc": 0.25}], False) and computed == ["official"]
    assert again.label("structure_sweep") == "CIFAR-10" and again.note() is None
    stored = json.loads(ResultCache().table_path("structure_sweep", again.sweep_config(**SWEEP)).read_text())
    assert stored["config"]["data_variant"] == "official" and "source" not in stored["config"]
    assert "cifar10.npz" not in json.dumps(stored["config"])  # the same key from keras.datasets
    assert structure.table_variant(stored["config"]) == "official"

    later = experiments.StructureStudy(**STUDY)  # both cached: this machine's data first
    assert later.sweep(**SWEEP) == ([{"method": "dense", "test_acc": 0.25}], True) and computed == ["official"]
    assert later.label() == "CIFAR-10" and later.note() is None


def test_every_committed_structure_table_names_the_stand_in():
    names = [p for p in sorted(TABLES.glob("*.json"))
             if p.name.split("-")[0] in ("structure_sweep", "per_layer_sparsity", "seed003_table")]
    assert len(names) >= 3
    for path in names:
        assert structure.table_variant(json.loads(path.read_text())["config"]) == data_lib.STAND_IN, path.name
    assert structure.table_variant({"data_variant": "official"}) == "official"
    assert structure.table_variant({"source": "keras.datasets"}) == "official"  # an older official table
    assert structure.variants_label(["official", data_lib.STAND_IN, "official"], unit="seed") == (
        "CIFAR-10 (jpeg-q75 stand-in: 1 seed; official: 2 seeds)")


@pytest.mark.notebooks
def test_notebook_07_shows_the_stand_in_tables_labelled_on_a_machine_with_the_official_file(official_folder,
                                                                                            tmp_path):
    """The notebook itself, on a machine whose only CIFAR-10 is official: every result comes from
    the cache (a copy of the committed tables), labelled as the stand-in, with a line saying so."""
    root = tmp_path / "root"
    shutil.copytree(TABLES, root / "results" / "cache" / "tables")
    env = dict(os.environ, **{paths.DATA_DIR_ENV: str(official_folder), "MOPRUNE_ROOT": str(root),
                              "MOPRUNE_OUTPUT_DIR": str(tmp_path / "outputs")})
    notebook = ROOT / "notebooks" / "07_structured_global_iterative.ipynb"
    done = subprocess.run([sys.executable, "-m", "helpers.notebooks", "execute", str(notebook),
                           str(tmp_path / "07.ipynb")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = [c for c in json.loads((tmp_path / "07.ipynb").read_text())["cells"] if c["cell_type"] == "code"]

    def text(cell):
        return "".join("".join(o.get("text", "")) for o in cell["outputs"] if o.get("output_type") == "stream")

    printed = [text(c) for c in cells]
    [label] = [t for t in printed if "; CNN width 0.25" in t]
    assert label.startswith(f"{STAND_IN}; CNN width 0.25") and f"were computed on {STAND_IN}" in label
    assert any(t.startswith("from the cache") for t in printed)
    assert any(f"Ours: {STAND_IN}" in t and "would load CIFAR-10;" in t for t in printed)
    [full_size] = [t for t in printed if "project 003's CNN (10,026,374 parameters)" in t]
    assert full_size.startswith(STAND_IN) and f"were computed on {STAND_IN}" in full_size
    # the sweep, the per-layer table, project 003's tables and the full-size sweep
    assert sum("NOTE:" in t for t in printed) == 4
    assert not (root / "results" / "cache" / "models").exists()  # nothing trained

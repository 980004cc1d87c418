"""The data a run trained on is part of its record, not of its key (README.md, "Data"): the committed
CIFAR-10 runs, made on the JPEG stand-in, are still hits and still labelled as the stand-in on a
machine that has only the official CIFAR-10 (here: a tiny fake "official" file)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import data as data_lib
from helpers import experiments, paths, plotting, runner, sweep
from helpers.run_config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "results" / "cache"
STAND_IN = "CIFAR-10 (jpeg-q75 stand-in)"


@pytest.fixture
def official_cifar(tmp_path, monkeypatch):
    """A data folder whose only CIFAR-10 is an official-looking ``cifar10.npz`` (20 random images)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    np.savez(folder / "cifar10.npz", x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
             y_train=(np.arange(20) % 10).reshape(-1, 1).astype("uint8"),
             x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), y_test=np.arange(10).astype("uint8"))
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(folder))
    return folder


def _cifar_configs():
    """Notebook 03's CIFAR-10 sweep on its defaults (the reduced protocol)."""
    return experiments.smgd_comparison("cifar10", None, "both", 20, (0,), train_subset=10_000)


def _cached(configs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs made under other versions are named, not a failure here
        return sweep.run_sweep(configs, cache_dir=CACHE, cached_only=True, progress=False)


def test_cached_stand_in_runs_are_labelled_as_such_on_a_machine_with_the_official_file(official_cifar):
    assert data_lib.file_variant("cifar10") == "official"
    assert data_lib.load_dataset("cifar10").label == "CIFAR-10"  # what this machine would train on
    configs = _cifar_configs()
    results = _cached(configs)
    assert len(results) == len(configs) and not results.missing  # the keys did not change
    assert {r.dataset_variant for r in results} == {"jpeg-q75 stand-in"}
    assert sweep.dataset_label(results) == STAND_IN and results[0].dataset_label == STAND_IN
    note = sweep.variant_note(results)
    assert note and f"were made on {STAND_IN}" in note and "would load CIFAR-10;" in note
    # the title a figure gets is the one the notebook builds from the runs, not rewritten from the data file
    import matplotlib

    matplotlib.use("Agg")
    frame = sweep.history_frame(results)
    title = f"Accuracy. {sweep.dataset_label(results)}, VGG"
    fig = plotting.plot_train_test(frame, "train_accuracy", "test_accuracy", "accuracy", title=title)
    assert fig._suptitle.get_text().replace("\n", " ") == title
    matplotlib.pyplot.close(fig)


def test_no_note_when_the_runs_were_made_on_the_data_this_machine_has(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))  # no CIFAR-10 file: keras.datasets, official
    mnist = _cached(experiments.smgd_comparison("mnist", ["madam"], "on", 30, (0,)))
    assert sweep.variant_note(mnist) is None and sweep.dataset_label(mnist) == "MNIST"
    (tmp_path / "cifar10-jpeg.npz").write_bytes(b"")  # only its name is looked at
    assert data_lib.file_variant("cifar10") == "jpeg-q75 stand-in"
    assert sweep.variant_note(_cached(_cifar_configs())) is None


def test_records_without_the_field_get_the_variant_they_were_made_on():
    assert runner.record_dataset_variant({"config": {"dataset": "cifar10"}}) == "jpeg-q75 stand-in"
    assert runner.record_dataset_variant({"config": {"dataset": "mnist"}}) == "official"
    assert runner.record_dataset_variant({"config": {"dataset": "cifar10"}, "dataset_variant": "official"}) == "official"
    result = runner.RunResult(RunConfig(dataset="cifar10", epochs=1), {}, {}, "k", Path("x"), True)
    assert result.dataset_variant == "jpeg-q75 stand-in"
    mixed = [result, runner.RunResult(RunConfig(dataset="cifar10", seed=1), {}, {}, "k", Path("y"), True,
                                      dataset_variant="official")]
    assert sweep.dataset_label(mixed) == "CIFAR-10 (jpeg-q75 stand-in: 1 run; official: 1 run)"


def test_every_committed_run_names_its_data_and_keeps_its_key():
    for path in sorted((CACHE / "runs").glob("*.json")):
        stored = json.loads(path.read_text())
        config = runner.stored_config(stored["config"], stored["key"])  # the key is the configuration's alone
        assert path.stem.endswith(config.key())
        assert runner.record_dataset_variant(stored) == runner.DEFAULT_VARIANTS[config.dataset], path.name


def test_the_record_schema_checks_the_data_fields():
    good = {"dataset_variant": "official", "dataset_hash": "0123456789abcdef"}
    runner.check_provenance(good)
    for bad in ({"dataset_variant": ""}, {"dataset_variant": 3}, {"dataset_hash": "xyz"}):
        with pytest.raises(runner.RecordError):
            runner.check_provenance(bad)


def test_the_content_hash_is_the_arrays_not_the_file(official_cifar):
    with np.load(official_cifar / "cifar10.npz") as f:
        raw = {k: f[k] for k in f.files}
    flat = dict(raw, y_train=raw["y_train"].reshape(-1).astype("int64"))  # keras.datasets' (N, 1) vs (N,)
    assert data_lib.content_hash(raw) == data_lib.content_hash(flat)
    assert data_lib.load_dataset("cifar10").content_hash == data_lib.content_hash(raw)
    changed = dict(raw, x_test=raw["x_test"].copy())
    changed["x_test"][0, 0, 0, 0] ^= 1
    assert data_lib.content_hash(changed) != data_lib.content_hash(raw)


def test_a_new_run_records_its_data(fake_mnist, tmp_path, monkeypatch):
    fake_mnist.content_hash = "00112233445566ff"
    monkeypatch.setattr(runner, "_load_data", lambda *args: fake_mnist)  # not an earlier test's cached data
    result = runner.run_experiment(RunConfig(dataset="mnist", epochs=1, train_subset=64, eval_train=False),
                                   cache_dir=tmp_path / "cache", progress=False, checkpoint=False)
    stored = json.loads(result.path.read_text())
    assert stored["dataset_variant"] == "official" and stored["dataset_hash"] == "00112233445566ff"
    again = runner.run_experiment(result.config, cache_dir=tmp_path / "cache", progress=False)
    assert again.from_cache and again.dataset_hash == "00112233445566ff" and again.dataset_variant == "official"

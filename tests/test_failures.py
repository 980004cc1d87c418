"""A run that fails is a record, never a result; corrupt cache files are moved aside and
recomputed; concurrent writers of one key do not collide; the committed cache still loads."""

import errno
import json
import threading

import keras
import numpy as np
import pytest

from helpers import cache, callbacks, experiments, files, models, runner, sweep
from helpers.cache import CorruptCacheWarning
from helpers.run_config import RunConfig
from helpers.runner import RunFailedError, run_experiment
from helpers.sweep import run_sweep

TINY = dict(dataset="mnist", epochs=1, train_subset=256, eval_train=False)


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the run is recorded as failed")


@pytest.mark.needs_data("mnist")
@pytest.mark.parametrize("itp", [False, True])
def test_diverged_run_is_a_failed_record_not_a_result(itp, tmp_path, monkeypatch):
    config = RunConfig(optimizer="sgd", itp=itp, learning_rate=1e12, **TINY)
    with pytest.raises(RunFailedError, match="diverged") as info:
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert info.value.epoch == 1 and info.value.path.parent.name == "failed"
    record = json.loads(info.value.path.read_text())
    assert record["status"] == "failed" and "diverged" in record["reason"] and record["epoch"] == 1
    assert record["config"]["learning_rate"] == 1e12 and record["key"] == config.key()
    assert runner.find_cached(config, tmp_path) is None and not list((tmp_path / "runs").iterdir())
    assert runner.find_failed(config, tmp_path) == info.value.path

    monkeypatch.setattr(keras.Model, "fit", _no_training)  # a later call reports, never retrains
    with pytest.raises(RunFailedError, match="retry_failed"):
        run_experiment(config, cache_dir=tmp_path, progress=False)
    with pytest.warns(RuntimeWarning, match="FAILED"), pytest.raises(RuntimeError, match="every run"):
        run_sweep([config], cache_dir=tmp_path, progress=False)
    with pytest.warns(RuntimeWarning, match="FAILED"), pytest.raises(RuntimeError, match="every run"):
        run_sweep([config], cache_dir=tmp_path, progress=False, cached_only=True)


@pytest.mark.needs_data("mnist")
def test_sweep_leaves_failures_out_and_lists_them(tmp_path, monkeypatch):
    good = RunConfig(optimizer="adam", **TINY)
    bad = RunConfig(optimizer="sgd", learning_rate=1e12, **TINY)
    with pytest.warns(RuntimeWarning, match="mnist-sgd"):
        results = run_sweep([good, bad], cache_dir=tmp_path, progress=False)
    assert [r.config.optimizer for r in results] == ["adam"]
    assert [e.slug for e in results.failed] == [bad.slug()]
    stored = json.loads(results[0].path.read_text())
    assert stored["status"] == "finished"
    frame = sweep.summary_frame(results)
    assert list(frame.optimizer) == ["adam"]  # the failure is never a number in a table
    # retried only when asked; a retry that still diverges stays a failure
    with pytest.raises(RunFailedError):
        run_experiment(bad, cache_dir=tmp_path, progress=False, retry_failed=True)


@pytest.mark.needs_data("mnist")
def test_training_that_raises_is_recorded(tmp_path, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise MemoryError("simulated out of memory")

    monkeypatch.setattr(keras.Model, "fit", broken_fit)
    config = RunConfig(optimizer="adam", **TINY)
    with pytest.raises(RunFailedError, match="MemoryError"):
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert runner.find_failed(config, tmp_path) is not None


def test_old_cached_runs_without_status_load_unchanged(tmp_path):
    """A committed record from before the status field (copied: the committed file is only read)."""
    old = next((p for p in sorted((cache.default_cache_dir() / "runs").glob("*.json"))
                if "status" not in json.loads(p.read_text())), None)
    if old is None:
        pytest.skip("no committed record without a status")
    path = tmp_path / "runs" / old.name
    path.parent.mkdir(parents=True)
    path.write_bytes(old.read_bytes())
    stored = json.loads(old.read_text())
    config = dict(stored["config"])
    if isinstance(config["weights"], list):
        config["weights"] = tuple(config["weights"])
    result = runner.load_cached(RunConfig(**config), tmp_path)
    assert result.summary == stored["summary"] and result.from_cache
    assert path.read_bytes() == old.read_bytes()


@pytest.mark.parametrize("content", ["", '{"key": "abc", "conf', "[1, 2]", '{"key": 1}'])
def test_corrupt_run_file_is_moved_aside_and_missing(content, tmp_path):
    config = RunConfig(optimizer="madam", **TINY)
    path = tmp_path / "runs" / f"{config.slug()}-{config.key()}.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.warns(CorruptCacheWarning, match=path.name):
        assert runner.find_cached(config, tmp_path) is None
    assert not path.exists()
    moved = list(path.parent.glob(path.name + ".corrupt-*"))
    assert len(moved) == 1 and moved[0].read_text() == content


def test_corrupt_table_is_moved_aside_and_recomputed(tmp_path):
    value, hit = cache.cached("t", {"a": 1}, lambda: [1, 2], cache_dir=tmp_path)
    (path,) = (tmp_path / "tables").glob("t-*.json")
    path.write_text('{"value": [1,')
    with pytest.warns(CorruptCacheWarning, match=path.name):
        value, hit = cache.cached("t", {"a": 1}, lambda: [1, 2], cache_dir=tmp_path)
    assert (value, hit) == ([1, 2], False)
    assert cache.cached("t", {"a": 1}, lambda: [3], cache_dir=tmp_path) == ([1, 2], True)
    assert len(list((tmp_path / "tables").glob("*.corrupt-*"))) == 1


def _model_and_optimizer():
    model = models.lenet5()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def test_checkpoint_of_another_configuration_is_ignored(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "partial" / "run.npz"
    runner._save_checkpoint(path, model, optimizer, {"epoch": [0, 1]}, 1, key="aaaa")
    assert runner._restore(path, model, optimizer, "aaaa") == ({"epoch": [0, 1]}, 1)
    with pytest.warns(CorruptCacheWarning, match="another configuration"):
        assert runner._restore(path, model, optimizer, "bbbb") == (None, 0)
    assert not path.exists() and list(path.parent.glob("run.npz.corrupt-*"))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_moved_aside(damage, tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "run.npz"
    runner._save_checkpoint(path, model, optimizer, {"epoch": [0]}, 1, key="k")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"not a zip")
    before = [v.numpy().copy() for v in model.variables]
    with pytest.warns(CorruptCacheWarning, match="run.npz"):
        assert runner._restore(path, model, optimizer, "k") == (None, 0)
    for a, v in zip(before, model.variables):  # nothing half-restored
        np.testing.assert_array_equal(a, v.numpy())


def test_concurrent_atomic_writes_of_one_key_never_collide(tmp_path):
    path = tmp_path / "x.json"
    errors = []

    def writer(i):
        try:
            for _ in range(20):
                files.write_json(path, {"writer": i, "data": list(range(200))})
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and json.loads(path.read_text())["data"] == list(range(200))
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left


def test_concurrent_trained_model_calls_give_one_result(tmp_path, fake_mnist):
    """Four concurrent identical calls: no BlockingIOError on a shared temporary file, one
    weights file, the same numbers."""
    outputs, errors = [], []

    def call():
        try:
            model, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, train_subset=64, progress=False,
                                                 model_kwargs={"hidden": (8,)})
            outputs.append(model.get_weights()[0])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    files = list((tmp_path / "results" / "cache" / "models").iterdir())
    assert [f.suffixes[-2:] for f in files] == [[".weights", ".h5"]]
    model, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, train_subset=64, progress=False,
                                         model_kwargs={"hidden": (8,)})
    assert any(np.array_equal(model.get_weights()[0], w) for w in outputs)


def test_dense_fans_are_read_from_the_models_without_touching_the_callers_state():
    """The Glorot limits and record sizes come from the built models (models.dense_fans), and reading
    them reseeds nothing and takes no layer name from the caller's thread."""
    import random

    models.dense_fans.cache_clear()
    keras.utils.set_random_seed(3)
    state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    def input_number():  # input_layer, input_layer_1, ...: Keras' per-thread name counter
        name = models.build_model("lenet5", seed=None).layers[0].name
        return int(name.rsplit("_", 1)[1]) if name.count("_") > 1 else 0

    first = input_number()
    keras.utils.set_random_seed(3)
    assert models.dense_fans("lenet5") == {"denselayer1": (400, 120), "denselayer2": (120, 84), "denselayer3": (84, 10)}
    assert models.dense_fans("vgg") == {"denselayer": (2048, 10)}
    assert random.getstate() == state and (np.random.get_state()[1] == numpy_state).all()
    assert input_number() == first + 1


def test_every_committed_cached_run_is_still_found():
    """The validation layer must not change a key: every config of the paper's sweeps that the
    committed cache holds is still found there."""
    configs = (experiments.weighted_sum_grid() + experiments.smgd_comparison("mnist", seeds=(0, 1, 2))
               + experiments.smgd_comparison("cifar10", epochs=20, train_subset=10_000))
    root = cache.default_cache_dir()
    if not (root / "runs").exists():
        pytest.skip("no committed cache")
    # globbed, not find_cached: this test must never move a committed file aside
    missing = [c.slug() for c in configs if not list((root / "runs").glob(f"*-{c.key()}.json"))]
    assert not missing


# Failures have kinds: diverged (non-finite loss or weights), raised (training raised) and io (the
# disk, permissions, a missing folder); io failures are not sticky.


@pytest.mark.needs_data("mnist")
def test_full_disk_is_an_io_failure_that_the_next_call_retries(tmp_path, monkeypatch):
    config = RunConfig(optimizer="adam", **{**TINY, "epochs": 2})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner, "_save_checkpoint", disk_full)
    with pytest.raises(RunFailedError, match="No space left on device") as info:
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert info.value.kind == "io" and "next call" in str(info.value)
    record = json.loads(info.value.path.read_text())
    assert record["kind"] == "io" and record["status"] == "failed"
    monkeypatch.undo()  # space is freed
    result = run_experiment(config, cache_dir=tmp_path, progress=False)  # no retry_failed needed
    assert not result.from_cache and result.summary["epochs"] == 2
    assert runner.find_failed(config, tmp_path) is None


@pytest.mark.needs_data("mnist")
def test_io_failure_is_retried_by_the_next_sweep(tmp_path, monkeypatch):
    config = RunConfig(optimizer="adam", **TINY)
    real_write = runner.ResultCache.write_json

    def runs_unwritable(self, kind, name, obj):
        if kind == "runs":
            raise PermissionError(errno.EACCES, "Permission denied", str(self.root / kind / name))
        return real_write(self, kind, name, obj)

    monkeypatch.setattr(runner.ResultCache, "write_json", runs_unwritable)
    with pytest.warns(RuntimeWarning, match="FAILED"), pytest.raises(RuntimeError, match="every run"):
        run_sweep([config], cache_dir=tmp_path, progress=False)
    assert runner.failed_error(config, runner.find_failed(config, tmp_path)).kind == "io"
    monkeypatch.undo()
    (result,) = run_sweep([config], cache_dir=tmp_path, progress=False)
    assert not result.from_cache


@pytest.mark.needs_data("mnist")
def test_diverged_run_discards_its_checkpoint_so_a_retry_starts_fresh(tmp_path, monkeypatch):
    config = RunConfig(optimizer="adam", **{**TINY, "epochs": 3})
    real_check, checks = callbacks.non_finite_reason, []

    def diverges_in_epoch_2(model, logs=None):
        checks.append(1)
        return "training loss is nan (diverged)" if len(checks) == 2 else real_check(model, logs)

    monkeypatch.setattr(callbacks, "non_finite_reason", diverges_in_epoch_2)
    with pytest.raises(RunFailedError, match="diverged") as info:
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert info.value.kind == "diverged" and info.value.epoch == 2
    assert json.loads(info.value.path.read_text())["kind"] == "diverged"
    partial = tmp_path / "partial" / runner.ResultCache.run_name(config, ".npz")
    assert not partial.exists()  # the epoch-1 checkpoint led to the divergence: not resumed

    monkeypatch.setattr(callbacks, "non_finite_reason", real_check)
    fit, starts = keras.Model.fit, []

    def spy(model, *args, **kwargs):
        starts.append(kwargs.get("initial_epoch"))
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    with pytest.raises(RunFailedError, match="retry_failed"):  # diverged is sticky
        run_experiment(config, cache_dir=tmp_path, progress=False)
    result = run_experiment(config, cache_dir=tmp_path, progress=False, retry_failed=True)
    assert starts[0] == 0 and result.history["epoch"] == [0, 1, 2, 3]


@pytest.mark.needs_data("mnist")
def test_training_that_raises_is_a_raised_failure(tmp_path, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise MemoryError("simulated out of memory")

    monkeypatch.setattr(keras.Model, "fit", broken_fit)
    config = RunConfig(optimizer="adam", **TINY)
    with pytest.raises(RunFailedError, match="MemoryError") as info:
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert info.value.kind == "raised" and json.loads(info.value.path.read_text())["kind"] == "raised"
    with pytest.raises(RunFailedError, match="retry_failed"):  # sticky until asked
        run_experiment(config, cache_dir=tmp_path, progress=False)


@pytest.mark.needs_data("mnist")
def test_a_cache_folder_that_is_a_dangling_symlink_is_created_and_used(tmp_path):
    link = tmp_path / "cache"
    link.symlink_to(tmp_path / "elsewhere" / "cache")
    result = run_experiment(RunConfig(optimizer="adam", **TINY), cache_dir=link, progress=False)
    assert result.path.exists() and (tmp_path / "elsewhere" / "cache" / "runs" / result.path.name).exists()


def test_a_diverged_pretrained_network_is_never_cached(tmp_path, fake_mnist, monkeypatch):
    """trained_model's plain fit runs under NonFiniteGuard: the first non-finite epoch ends it with
    RunFailedError naming that epoch, and no weights are written."""
    monkeypatch.setattr(callbacks, "non_finite_reason", lambda model, logs=None: "training loss is nan (diverged)")
    with pytest.raises(RunFailedError, match="failed at epoch 1: training loss is nan") as info:
        experiments.trained_model("mlp", "mnist", 3, 32, 1e-3, train_subset=64, progress=False,
                                  model_kwargs={"hidden": (8,)})
    assert info.value.kind == "diverged"
    assert not list((tmp_path / "results" / "cache" / "models").glob("*.weights.h5"))


def _diverging(monkeypatch):
    monkeypatch.setattr(callbacks, "non_finite_reason", lambda model, logs=None: "training loss is nan (diverged)")


def test_a_diverged_fine_tune_of_the_post_training_sweep_raises(fake_mnist, monkeypatch):
    """post_training_sweep's fine-tuning fit runs under NonFiniteGuard: RunFailedError, never a row."""
    model = models.build_model("mlp", hidden=(8,))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _diverging(monkeypatch)
    with pytest.raises(RunFailedError, match="mnist-weight-fine-tuned-k0.5 failed at epoch 1") as info:
        experiments.post_training_sweep(model, fake_mnist, ks=[0.5], finetune_epochs=1, batch_size=32,
                                        progress=False)
    assert info.value.kind == "diverged"


@pytest.mark.parametrize("retrain_epochs, match", [(1, "mnist-l1_unstructured-iterative-0.5"), (0, "mnist-gmp-0.5")])
def test_a_diverged_retrain_of_the_structure_sweep_raises(retrain_epochs, match, fake_mnist, monkeypatch):
    """structure_sweep's iterative retrain and its GMP fine-tune run under NonFiniteGuard (with no
    retraining epochs, GMP's fit is the first to end an epoch)."""
    model = models.build_model("mlp", hidden=(8,))
    _diverging(monkeypatch)
    with pytest.raises(RunFailedError, match=f"{match} failed at epoch 1"):
        experiments.structure_sweep(model, fake_mnist, targets=[0.5], methods=["l1_unstructured"],
                                    retrain_epochs=retrain_epochs, gmp_epochs=1, latency_batch=4, latency_repeats=1,
                                    progress=False)

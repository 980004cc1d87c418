"""The cached experiment runner: validation before training, protocol defaults, cache, resume."""

import dataclasses
import json

import numpy as np
import pytest

from helpers import runner, sweep
from helpers.run_config import RunConfig
from helpers.runner import run_experiment

TINY = dict(dataset="mnist", epochs=2, train_subset=512, eval_train=False)


@pytest.mark.parametrize("bad, match", [
    (dict(optimizer="no-such-optimizer"), "unknown optimizer"),
    (dict(dataset="imagenet"), "unknown dataset"),
    (dict(threshold=-1e-3), "threshold"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate=-0.1), "learning_rate"),
    (dict(protocol="sloppy"), "protocol"),
    (dict(optimizer="adam", weights=(0.9, 0.1)), "multi-objective"),
    (dict(weights=(0.0, 0.0)), "not both 0"),
    (dict(weights=(1.0, 2.0, 3.0)), "two non-negative"),
    (dict(model="vgg"), "does not fit"),
    (dict(dataset="cifar10", model="lenet5"), "does not fit"),
    (dict(lr_schedule="cosine"), "lr_schedule"),
])
def test_bad_parameters_fail_before_any_training(bad, match, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_load_data", _must_not_be_called)
    monkeypatch.setattr(runner, "build_model", _must_not_be_called)
    with pytest.raises(ValueError, match=match):
        run_experiment(RunConfig(**{**TINY, **bad}), cache_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def _must_not_be_called(*args, **kwargs):
    raise AssertionError("work started before the configuration was validated")


def test_sweep_validates_every_config_first(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer"):
        sweep.run_sweep([RunConfig(**TINY), RunConfig(**{**TINY, "optimizer": "nope"})], cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_protocol_defaults():
    smgd = RunConfig(optimizer="smgd").resolved()
    assert (smgd.learning_rate, smgd.momentum, smgd.batch_size, smgd.logistic) == (1e-2, 0.9, 32, True)
    assert smgd.decay == pytest.approx(1e-2 / 30) and smgd.conv_l2_in_penalty and smgd.lambda_dense == 0
    adam = RunConfig(optimizer="adam").resolved()
    assert (adam.learning_rate, adam.decay, adam.lambda_dense) == (1e-3, 0.0, 3e-4)
    cifar = dict(dataset="cifar10", epochs=125)
    assert RunConfig(optimizer="smgd", **cifar).resolved().logistic is False        # B5, faithful
    assert RunConfig(optimizer="smgd", protocol="clean", **cifar).resolved().logistic is True
    assert RunConfig(optimizer="sgd", itp=False, **cifar).resolved().batch_size == 32  # B3, faithful
    assert RunConfig(optimizer="sgd", itp=False, protocol="clean", **cifar).resolved().batch_size == 64
    assert RunConfig(optimizer="rmsprop", **cifar).resolved().lambda_dense == 0.03
    assert RunConfig(protocol="clean").resolved().conv_l2_in_penalty is False          # B11
    search = RunConfig(weights=(0.999, 1e-3), lr_schedule="constant").resolved()
    assert (search.logistic, search.decay) == (False, 0.0)


def test_keys_depend_on_resolved_configuration():
    assert RunConfig().key() == RunConfig(learning_rate=1e-3, batch_size=32, model="lenet5").key()
    assert RunConfig(seed=0).key() != RunConfig(seed=1).key()
    assert RunConfig(weights=(0.5, 0.5)).key() != RunConfig(weights=(0.6, 0.4)).key()


@pytest.mark.needs_data("mnist")
def test_run_cache_and_history(tmp_path, monkeypatch):
    config = RunConfig(optimizer="madam", **TINY)
    first = run_experiment(config, cache_dir=tmp_path, progress=False)
    assert not first.from_cache and first.path.exists()
    h = first.history
    assert h["epoch"] == [0, 1, 2]
    for key in ("test_ce", "test_accuracy", "l1_dense", "lr", "c1", "c2", "epoch_seconds"):
        assert len(h[key]) == 3, key
    assert h["c2"][0] is None and 0 <= h["c2"][1] <= 1 and h["c1"][1] + h["c2"][1] == pytest.approx(1)
    assert set(h["nnz"]) == {"denselayer1", "denselayer2", "denselayer3"}
    assert first.summary["nnz_dense"] == sum(v[-1] for v in h["nnz"].values())
    assert first.summary["dense_weights"] == 58_920
    assert h["nnz_before_itp"]["denselayer1"] == 48_000  # Glorot init has no exact zeros
    assert h["nnz"]["denselayer1"][0] < 48_000          # the initial prune happened
    stored = json.loads(first.path.read_text())
    assert stored["config"]["learning_rate"] == 1e-3 and stored["dataset_variant"] == "official"

    monkeypatch.setattr(runner, "build_model", _must_not_be_called)  # a cache hit trains nothing
    again = run_experiment(config, cache_dir=tmp_path, progress=False)
    assert again.from_cache
    assert again.summary == first.summary and again.config == first.config
    frame = again.history_frame()
    assert list(frame["epoch"]) == [0, 1, 2] and "nnz/denselayer2" in frame


@pytest.mark.needs_data("mnist")
def test_same_seed_same_initial_weights_for_every_optimizer(tmp_path):
    initial = {}
    for optimizer in ("madam", "smgd", "adam", "sgd"):
        result = run_experiment(RunConfig(optimizer=optimizer, **{**TINY, "epochs": 1}), cache_dir=tmp_path,
                                progress=False)
        initial[optimizer] = (result.history["test_ce"][0], result.history["nnz"]["denselayer1"][0])
    assert len(set(initial.values())) == 1, initial


@pytest.mark.needs_data("mnist")
def test_interrupted_run_resumes_identically(tmp_path, monkeypatch):
    config = RunConfig(optimizer="smgd", **{**TINY, "epochs": 3})
    reference = run_experiment(config, cache_dir=tmp_path / "a", progress=False)

    real_save = runner._save_checkpoint

    def crash_after_first_epoch(path, model, optimizer, history, epochs_done, key=None):
        real_save(path, model, optimizer, history, epochs_done, key)
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(runner, "_save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, cache_dir=tmp_path / "b", progress=False)
    assert list((tmp_path / "b" / "partial").iterdir())
    monkeypatch.setattr(runner, "_save_checkpoint", real_save)
    resumed = run_experiment(config, cache_dir=tmp_path / "b", progress=False)
    assert not list((tmp_path / "b" / "partial").iterdir())  # checkpoint removed when done
    for key in ("test_ce", "test_accuracy", "l1_dense", "c2", "lr"):
        np.testing.assert_array_equal(np.array(resumed.history[key], dtype=float),
                                      np.array(reference.history[key], dtype=float), err_msg=key)
    assert resumed.history["nnz"] == reference.history["nnz"]


@pytest.mark.needs_data("mnist")
def test_cached_only_sweep_skips_missing_runs(tmp_path, monkeypatch):
    done = RunConfig(optimizer="madam", **{**TINY, "epochs": 1})
    run_experiment(done, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(runner, "build_model", _must_not_be_called)
    results = sweep.run_sweep([done, RunConfig(optimizer="sgd", **{**TINY, "epochs": 1})], cache_dir=tmp_path,
                               progress=False, cached_only=True)
    assert [r.config.optimizer for r in results] == ["madam"]


def test_scalarization_in_config_and_key():
    from helpers.run_config import RunConfig

    separate = RunConfig(optimizer="madam", weights=(0.9, 0.1), lr_schedule="constant", epochs=10)
    joint = dataclasses.replace(separate, scalarization="joint")
    # the field came after the cache: separate runs keep the key they had without it
    assert separate.key() != joint.key()
    assert "joint" in joint.slug() and "joint" not in separate.slug()
    # SMGD is linear: both scalarizations are one run and share one cache entry
    smgd = RunConfig(optimizer="smgd")
    assert dataclasses.replace(smgd, scalarization="joint").key() == smgd.key()
    with pytest.raises(ValueError, match="scalarization"):
        RunConfig(optimizer="adam", scalarization="joint").resolved()
    with pytest.raises(ValueError, match="scalarization"):
        RunConfig(optimizer="madam", scalarization="both").resolved()


def test_optimizer_registry_builds_every_optimizer_and_a_new_entry_needs_one_line(monkeypatch):
    """Every registered optimizer is built from its entry (the classes the runner always built), the
    learning rate is the paper's schedule or the constant eta0, and one registry line makes a new
    optimizer a valid RunConfig with the entry's defaults (plots fall back to grey and its name)."""
    import keras

    from helpers import models, plotting, run_config
    from helpers.learning_rate import PaperSchedule
    from helpers.optimizers import MAdam, MRMSprop, RMSpropKeras2, SMGD

    expected = {"smgd": SMGD, "madam": MAdam, "mrmsprop": MRMSprop, "sgd": keras.optimizers.SGD,
                "adam": keras.optimizers.Adam, "rmsprop": RMSpropKeras2}
    assert run_config.OPTIMIZERS[:len(expected)] == tuple(expected)  # the paper's six first: the tables' order
    assert run_config.MULTI_OPTIMIZERS[:3] == ("smgd", "madam", "mrmsprop")
    for name in run_config.OPTIMIZERS:  # a newly registered one too
        config = RunConfig(optimizer=name, epochs=2).resolved()
        model = models.build_model("lenet5", "multi" if config.is_multi else "baseline")
        optimizer = run_config.make_optimizer(config, model, steps_per_epoch=10)
        assert type(optimizer) is expected[name] if name in expected else isinstance(optimizer, keras.optimizers.Optimizer)
        schedule = run_config.learning_rate_schedule(config, 10)
        assert isinstance(schedule, PaperSchedule) == bool(config.logistic or config.decay)
    assert run_config.learning_rate_schedule(RunConfig(optimizer="adam", lr_schedule="constant").resolved(), 10) == 1e-3
    with pytest.raises(ValueError, match="unknown optimizer"):
        run_config.get_optimizer("no-such-optimizer")

    entry = run_config.OptimizerEntry(lambda lr, c, penalty: keras.optimizers.Adagrad(lr))
    monkeypatch.setitem(run_config.OPTIMIZER_REGISTRY, "example_adagrad", entry)
    monkeypatch.setattr(run_config, "OPTIMIZERS", (*run_config.OPTIMIZERS, "example_adagrad"))
    config = RunConfig(optimizer="example_adagrad", epochs=2).resolved()
    assert not config.is_multi and config.learning_rate == 1e-3 and config.momentum == 0.0
    model = models.build_model("lenet5", "baseline")
    assert isinstance(run_config.make_optimizer(config, model, steps_per_epoch=10), keras.optimizers.Adagrad)
    assert plotting.color("example_adagrad") == plotting.DEFAULT_COLOR
    assert plotting.label("example_adagrad") == "example_adagrad"

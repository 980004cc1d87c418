"""A record is valid or it is not a record: every kind the cache stores (run record, failure record,
checkpoint, table, trained weights) is checked against its schema on every read, and a file that
fails is quarantined with its name and the reason in the warning, then recomputed, exactly like
an unreadable one.

The tampering cases are tables over real committed records, copied into a temporary cache (the
committed files are only read).
"""

import json
import math
import re
import shutil
import warnings

import keras
import numpy as np
import pytest

from helpers import cache, experiments, runner, runtime
from helpers.cache import CorruptCacheWarning, ResultCache
from helpers.run_config import RunConfig
from helpers.runner import run_experiment
from test_cache import committed, run_config  # the committed cache's files and their configs

COMMITTED = cache.default_cache_dir()
# A finished 30-epoch MAdam run (min-norm: c1 and c2 in its history, train accuracies too) and the
# same configuration's seed-1 run.
RUN = "mnist-madam-itp-e30-s0-6d026a2b64f8c8ff.json"
RUN_SEED1 = "mnist-madam-itp-e30-s1-38a4f9624e885a89.json"
TABLE = "per_layer_sparsity-36310baf8b69b2b7.json"
TINY = dict(dataset="mnist", epochs=3, train_subset=256, eval_train=False)
NAN = float("nan")


class _Retrained(BaseException):
    """Raised where the runner would start training (a BaseException: no failure record)."""


def _set(*path_and_value):
    *path, value = path_and_value

    def tamper(stored):
        target = stored
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return tamper


def _history(name, index, value):
    def tamper(stored):
        stored["history"][name][index] = value
    return tamper


def _drop_last_epoch(stored):
    for key, value in stored["history"].items():
        if isinstance(value, list):
            value.pop()
        elif key != "nnz_before_itp":
            for values in value.values():
                values.pop()


def _renumber(stored):
    stored["history"]["epoch"][2] = 3


def _nnz_above_layer_size(stored):
    stored["history"]["nnz"]["denselayer3"][-1] = 10_000
    stored["summary"]["nnz/denselayer3"] = 10_000


def _unresolved(stored):
    stored["config"]["momentum"] = None  # resolves to the same key, but it is not the resolved config


# name: (how the stored record is changed, a word the warning's reason must contain)
TAMPERING = {
    "test_acc-7": (_set("summary", "test_acc", 7.0), "test_acc"),
    "test_acc-nan": (_set("summary", "test_acc", NAN), "test_acc"),
    "test_acc-string": (_set("summary", "test_acc", "0.99"), "test_acc"),
    "nnz_dense-negative": (_set("summary", "nnz_dense", -5), "nnz_dense"),
    "summary-empty": (_set("summary", {}), "summary"),
    "summary-string": (_set("summary", "all fine"), "summary"),
    "summary-disagrees-with-history": (_set("summary", "test_acc", 0.5), "test_acc"),
    "summary-epochs": (_set("summary", "epochs", 29), "epochs"),
    "train_seconds-negative": (_set("summary", "train_seconds", -1.0), "train_seconds"),
    "pruned_fraction-above-1": (_set("summary", "pruned_fraction_dense", 1.5), "pruned_fraction_dense"),
    "history-empty": (_set("history", {}), "history"),
    "history-one-epoch-short": (_drop_last_epoch, "epoch"),
    "history-epochs-renumbered": (_renumber, "epoch"),
    "history-accuracy-above-1": (_history("test_accuracy", 5, 1.5), "test_accuracy"),
    "history-c1-nan": (_history("c1", 3, NAN), "c1"),
    "history-ce-infinite": (_history("test_ce", 3, math.inf), "test_ce"),
    "history-nnz-above-layer-size": (_nnz_above_layer_size, "denselayer3"),
    "history-nnz-not-a-dict": (_set("history", "nnz", [1, 2, 3]), "nnz"),
    "dense_sizes-wrong": (_set("dense_sizes", "denselayer1", 1), "dense_sizes"),
    "config-seed-not-the-key": (_set("config", "seed", 1), "key"),
    "config-epochs-not-the-key": (_set("config", "epochs", 29), "key"),
    "config-unknown-field": (_set("config", "colour", "red"), "colour"),
    "config-null": (_set("config", None), "config"),
    "config-learning_rate-string": (_set("config", "learning_rate", "0.001"), "learning_rate"),
    "config-not-resolved": (_unresolved, "momentum"),
    "key-of-another-run": (_set("key", "0123456789abcdef"), "key"),
    "status-failed": (_set("status", "failed"), "status"),
    "environment-string": (_set("environment", "linux"), "environment"),
    "backend-unknown": (_set("backend", "theano"), "backend"),
    "backend-not-a-string": (_set("backend", ["jax"]), "backend"),
    "backend-not-the-environments": (_set("backend", "jax"), "backend"),  # its environment says tensorflow
}


def _tampered_copy(tmp_path, tamper, name=RUN, source=RUN):
    stored = json.loads(committed("runs", source).read_text())
    tamper(stored)
    target = tmp_path / "runs" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(stored))
    return target


def test_the_untampered_committed_record_loads(tmp_path):
    path = committed("runs", RUN)
    (tmp_path / "runs").mkdir()
    shutil.copy(path, tmp_path / "runs" / RUN)
    config = run_config(json.loads(path.read_text()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)
        result = runner.load_cached(config, tmp_path)
    assert result.from_cache and result.summary == json.loads(path.read_text())["summary"]
    assert (tmp_path / "runs" / RUN).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_run_record_is_quarantined_and_recomputed(case, tmp_path, monkeypatch):
    tamper, word = TAMPERING[case]
    config = run_config(json.loads(committed("runs", RUN).read_text()))
    target = _tampered_copy(tmp_path, tamper)
    content = target.read_text()
    with pytest.warns(CorruptCacheWarning, match=re.escape(target.name)) as caught:
        assert runner.load_cached(config, tmp_path) is None
    message = " ".join(str(w.message) for w in caught if issubclass(w.category, CorruptCacheWarning))
    assert word in message, message
    assert not target.exists()
    (moved,) = target.parent.glob(target.name + ".corrupt-*")
    assert moved.read_text() == content

    # ... and recomputed: the runner goes on to train instead of returning the tampered result
    _tampered_copy(tmp_path, tamper)
    monkeypatch.setattr(runner, "_load_data", lambda *a, **k: (_ for _ in ()).throw(_Retrained()))
    with pytest.warns(CorruptCacheWarning, match=re.escape(target.name)), pytest.raises(_Retrained):
        run_experiment(config, cache_dir=tmp_path, progress=False)


def test_the_backend_is_provenance_not_part_of_the_key(tmp_path):
    """A record names the Keras backend that made it; one made under JAX (on a GPU) is the hit of
    the same configuration on TensorFlow, and an older record without the field is TensorFlow's."""
    stored = json.loads(committed("runs", RUN).read_text())
    config = run_config(stored)
    assert "backend" not in stored and stored["environment"]["backend"] == "tensorflow"  # an older record
    assert runner.record_backend(stored) == "tensorflow" and runner.record_backend({}) == "tensorflow"

    def made_on_jax(record):
        record["backend"] = record["environment"]["backend"] = "jax"
        record["environment"].pop("tensorflow", None)
    _tampered_copy(tmp_path, made_on_jax)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)
        result = runner.load_cached(config, tmp_path)
    assert result.backend == "jax" and result.key == config.key() == stored["key"]
    assert experiments.comparison_summary([result])["backend"].tolist() == ["jax"]
    assert runtime.check_environments([result], warn=False)[0][1]["backend"] == ("jax", keras.backend.backend())


def test_seed_0_record_under_seed_1_key_is_quarantined(tmp_path):
    seed1 = run_config(json.loads(committed("runs", RUN_SEED1).read_text()))
    target = _tampered_copy(tmp_path, lambda stored: None, name=RUN_SEED1, source=RUN)
    with pytest.warns(CorruptCacheWarning, match=f"{re.escape(RUN_SEED1)}.*key"):
        assert runner.load_cached(seed1, tmp_path) is None
    assert not target.exists()


def test_huge_number_in_a_record_is_quarantined_not_an_overflow(tmp_path):
    config = run_config(json.loads(committed("runs", RUN).read_text()))
    target = _tampered_copy(tmp_path, lambda stored: None)
    text = target.read_text()
    test_acc = json.loads(text)["summary"]["test_acc"]
    target.write_text(text.replace(f'"test_acc": {json.dumps(test_acc)}', '"test_acc": 1' + "0" * 400, 1))
    with pytest.warns(CorruptCacheWarning, match="test_acc"):
        assert runner.load_cached(config, tmp_path) is None


def test_every_committed_run_record_passes_the_schema():
    """No committed record is refused: checked with the schema alone, which moves nothing."""
    paths = sorted((COMMITTED / "runs").glob("*.json"))
    if not paths:
        pytest.skip("no committed cache")
    refused = {}
    for path in paths:
        try:
            runner.check_run_record(json.loads(path.read_text()), path.name.rsplit("-", 1)[1].removesuffix(".json"))
        except cache.RecordError as exc:
            refused[path.name] = str(exc)
    assert not refused, refused


# ------------------------------------------------------------------------------ failure records


def _failure_record(run, **changes):
    run = run.resolved()
    record = {"key": run.key(), "status": "failed", "kind": "diverged", "reason": "training loss is nan (diverged)",
              "epoch": 1, "config": run.to_dict(), "history": {"epoch": [0]}}
    record.update(changes)
    return record


FAILURE_TAMPERING = {
    "kind-unknown": (dict(kind="cosmic rays"), "kind"),
    "epoch-negative": (dict(epoch=-1), "epoch"),
    "epoch-beyond-the-run": (dict(epoch=99), "epoch"),
    "reason-not-a-string": (dict(reason=5), "reason"),
    "status-finished": (dict(status="finished"), "status"),
    "config-of-another-run": (dict(config=RunConfig(**{**TINY, "seed": 1}).resolved().to_dict()), "key"),
    "config-null": (dict(config=None), "config"),
    "key-other": (dict(key="0123456789abcdef"), "key"),
}


@pytest.mark.parametrize("case", sorted(FAILURE_TAMPERING))
def test_tampered_failure_record_is_quarantined(case, tmp_path):
    changes, word = FAILURE_TAMPERING[case]
    config = RunConfig(**TINY)
    path = ResultCache(tmp_path).write_json("failed", ResultCache.run_name(config), _failure_record(config, **changes))
    with pytest.warns(CorruptCacheWarning, match=f"{re.escape(path.name)}.*{word}"):
        assert runner.find_failed(config, tmp_path) is None
    assert not path.exists() and list(path.parent.glob(path.name + ".corrupt-*"))


@pytest.mark.parametrize("reason, kind", [("training loss is nan (diverged)", "diverged"),
                                          ("training raised MemoryError: out of memory", "raised"),
                                          ("training raised OSError: [Errno 28] No space left on device", "io"),
                                          ("training raised PermissionError: [Errno 13] denied", "io")])
def test_failure_records_without_a_kind_get_one_from_their_reason(reason, kind, tmp_path):
    config = RunConfig(**TINY)
    record = _failure_record(config, reason=reason)
    del record["kind"]
    path = ResultCache(tmp_path).write_json("failed", ResultCache.run_name(config), record)
    assert runner.find_failed(config, tmp_path) == path
    assert runner.failed_error(config, path).kind == kind


# ------------------------------------------------------------------------------ checkpoints


class _Stop(BaseException):
    """Stops a run where it is (like a kill: not a failure record)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The real checkpoint of a 3-epoch tiny run interrupted after its first epoch: (config, bytes)."""
    from helpers import data

    if data.unavailable_reason("mnist"):
        pytest.skip("no dataset: set PRUNING_DATA_DIR or put the data in ../shared/data (see helpers/data.py)")
    root = tmp_path_factory.mktemp("checkpoint")
    config = RunConfig(optimizer="madam", **TINY).resolved()
    fit, calls = keras.Model.fit, []

    def interrupted_fit(model, *args, **kwargs):
        calls.append(kwargs.get("initial_epoch"))
        if len(calls) == 2:
            raise _Stop()
        return fit(model, *args, **kwargs)

    keras.Model.fit = interrupted_fit
    try:
        with pytest.raises(_Stop):
            run_experiment(config, cache_dir=root, progress=False)
    finally:
        keras.Model.fit = fit
    path = ResultCache(root).path("partial", ResultCache.run_name(config, ".npz"))
    return config, path.read_bytes()


def _meta(change):
    def tamper(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return tamper


def _nan_array(prefix):
    def tamper(arrays):
        name = next(k for k in sorted(arrays) if k.startswith(prefix) and arrays[k].dtype.kind == "f"
                    and arrays[k].size > 1)
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] = np.nan
    return tamper


def _set_meta(key, value):
    return _meta(lambda meta: meta.__setitem__(key, value))


def _history_too_short(meta):
    meta["epochs_done"] = 2  # a 1-epoch history


CHECKPOINT_TAMPERING = {
    "epochs_done-99": (_set_meta("epochs_done", 99), "epochs_done"),
    "epochs_done-2-with-a-1-epoch-history": (_meta(_history_too_short), "epoch"),
    "epochs_done-negative": (_set_meta("epochs_done", -1), "epochs_done"),
    "epochs_done-string": (_set_meta("epochs_done", "1"), "epochs_done"),
    "history-accuracy-7": (_meta(lambda meta: meta["history"]["test_accuracy"].__setitem__(1, 7.0)), "test_accuracy"),
    "history-missing": (_meta(lambda meta: meta.pop("history")), "history"),
    "key-of-another-run": (_set_meta("key", "0123456789abcdef"), "another configuration"),
    "nan-weights": (_nan_array("model_"), "non-finite"),
    "nan-optimizer-slot": (_nan_array("opt_"), "non-finite"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_TAMPERING))
def test_tampered_checkpoint_is_quarantined_and_the_run_starts_fresh(case, checkpoint, tmp_path, monkeypatch):
    config, raw = checkpoint
    tamper, word = CHECKPOINT_TAMPERING[case]
    path = ResultCache(tmp_path).path("partial", ResultCache.run_name(config, ".npz"))
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    tamper(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    starts = []

    def first_epoch(model, *args, **kwargs):
        starts.append(kwargs.get("initial_epoch"))
        raise _Stop()

    monkeypatch.setattr(keras.Model, "fit", first_epoch)
    with pytest.warns(CorruptCacheWarning, match=f"{re.escape(path.name)}.*{word}"), pytest.raises(_Stop):
        run_experiment(config, cache_dir=tmp_path, progress=False)
    assert starts == [0]  # trained from the start, not from the tampered checkpoint
    assert list(path.parent.glob(path.name + ".corrupt-*"))


def test_the_untampered_checkpoint_resumes(checkpoint, tmp_path, monkeypatch):
    config, raw = checkpoint
    path = ResultCache(tmp_path).path("partial", ResultCache.run_name(config, ".npz"))
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    starts = []

    def first_epoch(model, *args, **kwargs):
        starts.append(kwargs.get("initial_epoch"))
        raise _Stop()

    monkeypatch.setattr(keras.Model, "fit", first_epoch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)
        with pytest.raises(_Stop):
            run_experiment(config, cache_dir=tmp_path, progress=False)
    assert starts == [1]


def test_epochs_done_99_no_longer_stores_a_finished_result_of_one_epoch(checkpoint, tmp_path):
    config, raw = checkpoint
    path = ResultCache(tmp_path).path("partial", ResultCache.run_name(config, ".npz"))
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    _set_meta("epochs_done", 99)(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(CorruptCacheWarning, match="epochs_done"):
        result = run_experiment(config, cache_dir=tmp_path, progress=False)
    assert result.history["epoch"] == [0, 1, 2, 3] and result.summary["epochs"] == 3


# ------------------------------------------------------------------------------ tables


def _table_copy(tmp_path, tamper):
    source = committed("tables", TABLE)
    stored = json.loads(source.read_text())
    config = json.loads(source.read_text())["config"]
    tamper(stored)
    target = tmp_path / "tables" / TABLE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(stored))
    return stored["name"] if isinstance(stored.get("name"), str) else "per_layer_sparsity", config, target


def _table_value_nan(stored):
    layer = next(iter(stored["value"]["l1 unstructured"]))
    stored["value"]["l1 unstructured"][layer] = NAN


TABLE_TAMPERING = {
    "name-of-another-table": (_set("name", "structure_sweep"), "name"),
    "config-not-its-hash": (_set("config", "target", 0.9), "config"),
    "value-null": (_set("value", None), "value"),
    "value-string": (_set("value", "fine"), "value"),
    "value-nan": (_table_value_nan, "non-finite"),
    "value-huge": (_set("value", "l1 unstructured", 10 ** 400), "value"),
}


@pytest.mark.parametrize("case", sorted(TABLE_TAMPERING))
def test_tampered_table_is_quarantined_and_recomputed(case, tmp_path):
    tamper, word = TABLE_TAMPERING[case]
    _, config, target = _table_copy(tmp_path, tamper)
    with pytest.warns(CorruptCacheWarning, match=f"{re.escape(TABLE)}.*{word}"):
        value, hit = cache.cached("per_layer_sparsity", config, lambda: {"recomputed": 1.0}, cache_dir=tmp_path)
    assert (value, hit) == ({"recomputed": 1.0}, False)
    assert list(target.parent.glob(TABLE + ".corrupt-*"))


def test_the_untampered_committed_table_is_a_hit(tmp_path):
    source = committed("tables", TABLE)
    stored = json.loads(source.read_text())
    (tmp_path / "tables").mkdir()
    shutil.copy(source, tmp_path / "tables" / TABLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)
        value, hit = cache.cached("per_layer_sparsity", stored["config"], lambda: pytest.fail("recomputed"),
                                  cache_dir=tmp_path)
    assert hit and value == stored["value"]


def test_a_computed_table_with_a_non_finite_number_is_never_stored(tmp_path):
    with pytest.raises(cache.RecordError, match=r"value\['acc'\]"):
        cache.cached("t", {"a": 1}, lambda: {"acc": NAN}, cache_dir=tmp_path)
    assert not list((tmp_path / "tables").glob("t-*.json"))


def test_every_committed_table_passes_the_schema():
    paths = sorted((COMMITTED / "tables").glob("*.json"))
    if not paths:
        pytest.skip("no committed cache")
    for path in paths:
        stored = json.loads(path.read_text())
        cache.check_table_record(stored, stored["name"], path.name.rsplit("-", 1)[1].removesuffix(".json"))


# ------------------------------------------------------------------------------ trained weights


def test_cached_weights_with_nan_are_quarantined_and_retrained(tmp_path, fake_mnist):
    args = dict(train_subset=64, progress=False, model_kwargs={"hidden": (8,)})
    model, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, **args)
    trained = model.get_weights()
    (path,) = (tmp_path / "results" / "cache" / "models").iterdir()
    poisoned = [w.copy() for w in trained]
    poisoned[0].flat[0] = np.nan
    model.set_weights(poisoned)
    model.save_weights(path)
    with pytest.warns(CorruptCacheWarning, match=f"{re.escape(path.name)}.*non-finite"):
        again, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, **args)
    assert all(np.all(np.isfinite(w)) for w in again.get_weights())
    for a, b in zip(trained, again.get_weights()):  # retrained from the same seed
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1

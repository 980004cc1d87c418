"""One cache for runs, tables and trained weights (``helpers.cache.ResultCache``): every existing
key and file name stays what it was (a changed key would silently recompute), and the shared
behaviour (atomic writes, corrupt files moved aside and recomputed, the writability check before
any work) holds for every kind."""

import json
import os
import re
import time
import warnings

import numpy as np
import pytest

from helpers import cache, experiments, files
from helpers.cache import CorruptCacheWarning, ResultCache, config_hash
from helpers.run_config import RunConfig

COMMITTED = cache.default_cache_dir()

# Real files of the committed cache, one of each kind of run: min-norm, fixed weights, the joint
# scalarization, CIFAR-10, a baseline without ITP.
RUN_FILES = ("mnist-madam-joint-itp-e30-s0-184a03819f17eb9f.json", "mnist-madam-w0-itp-e10-s0-398e3d7c219ebb5b.json",
             "mnist-madam-w0-joint-itp-e10-s0-51b6dcd2702c3455.json", "cifar10-smgd-itp-e20-s0-6ffa7937c4613410.json",
             "cifar10-mrmsprop-noitp-e20-s0-533ab758dac65c90.json")
TABLE_FILES = ("structure_sweep-f177f9d8fd695724.json", "per_layer_sparsity-36310baf8b69b2b7.json",
               "budget_pruning-5e19708170cf94a7.json", "post_training_sweep-65c8d446bbadef34.json",
               "compaction_timing-9a49a9c3c7d9a613.json")
# Weights file names of the notebooks' pre-trained networks, as trained_model named them before
# the cache had one home (no weights are committed, so the names are pinned here).
WEIGHTS = {
    "cifar_cnn-cifar10-db5a6caa99931019.weights.h5": dict(
        model_name="cifar_cnn", dataset="cifar10", epochs=2, batch_size=4, learning_rate=1e-3, train_subset=10000,
        model_kwargs={"width": 0.25}, optimizer="sgd", data_kwargs={"cifar_normalization": "half"}),
    "lenet5-mnist-72209df347f42a8f.weights.h5": dict(
        model_name="lenet5", dataset="mnist", epochs=10, batch_size=32, learning_rate=1e-3,
        data_kwargs={"validation_size": 5000}),
    "vgg-cifar10-a98ec81228de1d0b.weights.h5": dict(
        model_name="vgg", dataset="cifar10", epochs=10, batch_size=64, learning_rate=1e-3, train_subset=10000,
        data_kwargs={"validation_size": 5000}),
    "mlp-mnist-bac302cd42ab9f1e.weights.h5": dict(
        model_name="mlp", dataset="mnist", epochs=10, batch_size=128, learning_rate=1e-3),
}


def committed(kind, name):
    path = COMMITTED / kind / name
    if not path.exists():
        pytest.skip(f"no committed {kind}/{name}")
    return path


def run_config(stored):
    config = dict(stored["config"])
    if isinstance(config["weights"], list):
        config["weights"] = tuple(config["weights"])
    return RunConfig(**config)


@pytest.mark.parametrize("name", RUN_FILES)
def test_run_keys_and_file_names_are_unchanged(name):
    path = committed("runs", name)
    stored = json.loads(path.read_text())
    config = run_config(stored)
    assert config.key() == stored["key"] == name.rsplit("-", 1)[1].removesuffix(".json")
    assert ResultCache(COMMITTED).path("runs", ResultCache.run_name(config)) == path


def test_every_committed_run_is_named_by_its_key():
    paths = sorted((COMMITTED / "runs").glob("*.json"))
    if not paths:
        pytest.skip("no committed cache")
    for path in paths:
        config = run_config(json.loads(path.read_text()))
        assert path.name == f"{config.slug()}-{config.key()}.json"


@pytest.mark.parametrize("name", TABLE_FILES)
def test_table_file_names_are_unchanged(name):
    path = committed("tables", name)
    stored = json.loads(path.read_text())
    assert f"{stored['name']}-{config_hash(stored['config'])}.json" == name
    assert ResultCache(COMMITTED).table_path(stored["name"], stored["config"]) == path


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_weights_file_names_are_unchanged(name):
    assert experiments.training.weights_name(**WEIGHTS[name]) == name


@pytest.mark.needs_data("cifar10")
def test_notebook_07_configurations_hit_the_committed_tables():
    committed("tables", TABLE_FILES[0])
    study = experiments.StructureStudy(0.25, 2, 4, 1e-3, seed=0, train_subset=10000)
    store = ResultCache(COMMITTED)
    sweep = study.sweep_config(targets=[0.1, 0.3, 0.5, 0.6, 0.7, 0.9], retrain_epochs=1, gmp_epochs=2,
                               retrain_batch=32, latency_batch=256, latency_repeats=10)
    assert store.table_path("structure_sweep", sweep).name == TABLE_FILES[0]
    assert store.table_path("per_layer_sparsity", study.config(target=0.7)).name == TABLE_FILES[1]


def _study_of(name, config):
    """The study that computes committed table ``name`` and the point of ``config`` in it."""
    c = dict(config)
    if name == "budget_pruning":
        model = c["model"]
        study = experiments.BudgetPruning(
            {model: c["pretrain"]}, {model: (c["updates"], c["episode_finetune_steps"])}, c["methods"],
            validation_size=c["validation_size"], eval_size=c["eval_size"],
            episodes_per_update=c["episodes_per_update"], finetune_epochs=c["finetune_epochs"], seed=c["seed"],
            importance=c.get("importance", "magnitude"), bn_recalibration={model: c.get("bn_recalibration", 0)})
        return study, dict(model=model, kind=c["kind"], budget=c["budget"])
    if name in ("post_training_sweep", "compaction_timing"):
        study = experiments.PostTraining(*(c.pop(k) for k in ("epochs", "batch_size", "learning_rate")),
                                         seed=c.pop("seed"), train_subset=c.pop("train_subset"))
        return study, c
    study = experiments.StructureStudy(*(c.pop(k) for k in ("width", "epochs", "batch_size", "learning_rate")),
                                       seed=c.pop("seed"), train_subset=c.pop("train_subset"))
    return study, c  # the data variant's entry stays in the point: the study would add this machine's


STUDY_TABLES = ("budget_pruning", "post_training_sweep", "compaction_timing", "structure_sweep", "seed003_table",
                "per_layer_sparsity")


def test_every_committed_study_table_is_keyed_by_its_studys_config():
    """Each study rebuilt from a committed table's configuration (its settings checked and
    normalised) gives that configuration back through its legacy hook, hence the same file."""
    paths = [p for p in sorted((COMMITTED / "tables").glob("*.json")) if p.name.rsplit("-", 1)[0] in STUDY_TABLES]
    if not paths:
        pytest.skip("no committed cache")
    for path in paths:
        stored = json.loads(path.read_text())
        study, point = _study_of(stored["name"], stored["config"])
        config = (experiments.Study.config(study, **point) if isinstance(study, experiments.StructureStudy)
                  else study.config(**point))
        assert config == stored["config"], path.name
        assert path.name == f"{stored['name']}-{config_hash(config)}.json"
    assert {p.name.rsplit("-", 1)[0] for p in paths} == set(STUDY_TABLES)


def test_layout_and_round_trip(tmp_path):
    store = ResultCache(tmp_path)
    assert ResultCache().root == cache.default_cache_dir()
    path = store.write_json("failed", "x-abc.json", {"status": "failed", "reason": "r"})
    assert path == tmp_path / "failed" / "x-abc.json" and store.find("failed", "abc") == [path]
    assert store.read_json(path, required=("status",)) == {"status": "failed", "reason": "r"}
    assert store.find("runs", "abc") == []  # a failure record is never in runs/
    assert [p.name for p in (tmp_path / "failed").iterdir()] == ["x-abc.json"]  # no temporary file left


def test_corrupt_json_of_any_kind_is_moved_aside(tmp_path):
    store = ResultCache(tmp_path)
    for kind in ("runs", "failed", "tables"):
        path = store.write_json(kind, "a-1.json", {"value": 1})
        path.write_text('{"value": [1,')
        with pytest.warns(CorruptCacheWarning, match="a-1.json"):
            assert store.read_json(path, required=("value",)) is None
        assert not path.exists() and len(list(path.parent.glob("a-1.json.corrupt-*"))) == 1


def test_corrupt_table_is_recomputed(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return [1, 2]

    assert cache.cached("t", {"a": 1}, compute, cache_dir=tmp_path) == ([1, 2], False)
    path = ResultCache(tmp_path).table_path("t", {"a": 1})
    path.write_bytes(b"\x00garbage")
    with pytest.warns(CorruptCacheWarning):
        assert cache.cached("t", {"a": 1}, compute, cache_dir=tmp_path) == ([1, 2], False)
    assert len(calls) == 2 and cache.cached("t", {"a": 1}, compute, cache_dir=tmp_path) == ([1, 2], True)


def test_nothing_is_computed_when_the_cache_cannot_be_written(tmp_path):
    (tmp_path / "tables").write_text("a file where the folder should be")
    with pytest.raises(NotADirectoryError, match="tables"):
        cache.cached("t", {"a": 1}, lambda: pytest.fail("computed although the result could not be stored"),
                     cache_dir=tmp_path)
    with pytest.raises(NotADirectoryError):
        ResultCache(tmp_path).check_writable("tables")


def test_corrupt_weights_file_is_moved_aside_and_retrained(tmp_path, fake_mnist):
    args = dict(train_subset=64, progress=False, model_kwargs={"hidden": (8,)})
    model, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, **args)
    (path,) = (tmp_path / "results" / "cache" / "models").iterdir()
    assert path.name == experiments.training.weights_name("mlp", "mnist", 1, 32, 1e-3, train_subset=64,
                                                          model_kwargs={"hidden": (8,)})
    trained = model.get_weights()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CorruptCacheWarning, match=path.name):
        again, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, **args)
    assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1
    for a, b in zip(trained, again.get_weights()):  # retrained from the same seed
        np.testing.assert_allclose(a, b, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)  # the new file is whole: loaded, not retrained
        loaded, _ = experiments.trained_model("mlp", "mnist", 1, 32, 1e-3, **args)
    for a, b in zip(again.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_orphan_temporary_files_are_removed_when_the_cache_opens(tmp_path):
    """Temporary files left by a killed writer go when the cache opens; a live writer's (recent)
    temporary file and every other file stay."""
    hour_ago = time.time() - 3600
    orphans = [tmp_path / "runs" / ".a-1.json.k2j4h5g6.tmp", tmp_path / "partial" / ".r-1.npz.zzzz9999.tmp",
               tmp_path / "models" / ".m-1.weights.h5.ab_d1234.weights.h5",
               tmp_path / "tables" / ".t-1.json.x1y2z3w4.tmp", tmp_path / "failed" / ".f-1.json.qwertyui.tmp",
               tmp_path / ".write-check-abcd1234.tmp"]
    live = tmp_path / "runs" / ".b-2.json.q1w2e3r4.tmp"
    kept = [tmp_path / "runs" / "a-1.json", tmp_path / "runs" / "a-1.json.corrupt-20260101-000000-1-0",
            tmp_path / "runs" / ".gitkeep", tmp_path / "notes.tmp"]
    for path in [*orphans, live, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for path in [*orphans, *kept]:
        os.utime(path, (hour_ago, hour_ago))
    ResultCache(tmp_path)
    assert [p for p in orphans if p.exists()] == []
    assert live.exists() and all(p.exists() for p in kept)


def test_quarantines_in_the_same_second_never_overwrite_each_other(tmp_path):
    path = tmp_path / "x.json"
    for text in ("first", "second", "third"):
        path.write_text(text)
        with pytest.warns(CorruptCacheWarning, match="x.json"):
            files.quarantine(path, "test")
    assert sorted(p.read_text() for p in tmp_path.glob("x.json.corrupt-*")) == ["first", "second", "third"]


def test_writability_check_creates_the_folder_through_a_dangling_symlink(tmp_path):
    link = tmp_path / "cache"
    link.symlink_to(tmp_path / "a" / "b")
    ResultCache(link).check_writable("runs")
    assert (tmp_path / "a" / "b" / "runs").is_dir()
    files.write_json(link / "runs" / "x.json", {"ok": 1})  # what used to end in FileExistsError
    assert json.loads((tmp_path / "a" / "b" / "runs" / "x.json").read_text()) == {"ok": 1}


def test_writability_check_fails_early_naming_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    link = tmp_path / "cache"
    link.symlink_to(tmp_path / "file" / "cache")
    with pytest.raises(NotADirectoryError, match=re.escape(str(tmp_path / "file"))):
        ResultCache(link).check_writable("runs")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match=f"{re.escape(str(loop))}.*loop"):
        ResultCache(loop).check_writable("runs")

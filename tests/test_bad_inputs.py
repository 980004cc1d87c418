"""Every entry point rejects bad input before any work, with a message naming the parameter.

Each case asserts the exception type, that the message names the parameter, and that no work
started: ``keras.Model.fit`` / ``train_on_batch``, the runner's data loading and the dataset
loader are patched to fail the test if they are called.
"""

import math

import keras
import numpy as np
import pytest

from helpers import data, experiments, models, plotting, pruning, runner, validation
from helpers.pruning import costs
from helpers.run_config import RunConfig
from helpers.runner import run_experiment
from helpers.sweep import run_sweep
from helpers.notebooks import output_folders
from helpers.notebooks.parameters import check_notebook_parameters
from helpers.validation import Choice, Float, Int, List, Optional

_REAL_LOAD = data.load_dataset  # before the no_work fixture patches it
TINY = dict(dataset="mnist", epochs=1, train_subset=256, eval_train=False)
NAN = float("nan")


def _work_started(*args, **kwargs):
    raise AssertionError("work started before the input was validated")


@pytest.fixture
def no_work(monkeypatch):
    monkeypatch.setattr(keras.Model, "fit", _work_started)
    monkeypatch.setattr(keras.Model, "train_on_batch", _work_started)
    monkeypatch.setattr(runner, "_load_data", _work_started)
    monkeypatch.setattr(data, "load_dataset", _work_started)
    monkeypatch.setattr(data, "_read_raw", _work_started)


@pytest.fixture(scope="module")
def lenet():
    return models.lenet5()


def run(**fields):
    return lambda tmp, model: run_experiment(RunConfig(**{**TINY, **fields}), cache_dir=tmp, progress=False)


def budget_call(**kwargs):
    def call(tmp, model):
        from types import SimpleNamespace

        x = np.zeros((20, 28, 28, 1), "float32")
        y = np.zeros(20, "int32")
        fake = SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y)
        args = {"budget": 0.5, "eval_size": 10, **kwargs}
        cost = costs.ParameterFraction(model)
        return experiments.prune_to_budget(model, fake, cost, args.pop("budget"), progress=False, **args)
    return call


def trained(**kwargs):
    args = {"model_name": "mlp", "dataset": "mnist", "epochs": 1, "batch_size": 32, "learning_rate": 1e-3,
            "train_subset": 256, **kwargs}
    return lambda tmp, model: experiments.trained_model(**args)


def notebook(values, **specs):
    return lambda tmp, model: check_notebook_parameters(dict(values), **specs)


def papermill(name, **injected):
    """Notebook ``name``'s check cell after papermill injected ``injected``: the defaults, the
    injected values, and the injected cell in IPython's input history (``In``)."""
    def call(tmp, model):
        source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items())
        values = {**output_folders.parameter_defaults(name), **injected, "In": ["", "import helpers", source]}
        return check_notebook_parameters(values, name)
    return call


def symlinked_cache(target):
    def call(tmp, model):
        (tmp / "file").write_text("x")
        link = tmp / "link"
        link.symlink_to(target(tmp))
        return run_experiment(RunConfig(**TINY), cache_dir=link, progress=False)
    return call


HUGE = 10 ** 400  # beyond any float


CASES = {
    # RunConfig: exact types
    "itp-string-False": (run(itp="False"), TypeError, "itp"),
    "eval_train-no": (run(eval_train="no"), TypeError, "eval_train"),
    "learning_rate-string": (run(learning_rate="0.01"), TypeError, "learning_rate"),
    "train_subset-float": (run(train_subset=255.5), TypeError, "train_subset"),
    "epochs-bool": (run(epochs=True), TypeError, "epochs"),
    "epochs-float": (run(epochs=2.0), TypeError, "epochs"),
    "seed-string": (run(seed="0"), TypeError, "seed"),
    "batch_size-float": (run(batch_size=32.0), TypeError, "batch_size"),
    "dataset-int": (run(dataset=3), TypeError, "dataset"),
    "weights-strings": (run(weights=("a", 0.1)), TypeError, "weights[0]"),
    "logistic-string": (run(logistic="yes"), TypeError, "logistic"),
    # RunConfig: finite values in range, meaningless runs
    "learning_rate-nan": (run(learning_rate=NAN), ValueError, "learning_rate"),
    "learning_rate-inf": (run(learning_rate=math.inf), ValueError, "learning_rate"),
    "learning_rate-negative": (run(learning_rate=-1e-3), ValueError, "learning_rate"),
    "seed-negative": (run(seed=-1), ValueError, "seed"),
    "threshold-nan": (run(threshold=NAN), ValueError, "threshold"),
    "threshold-prunes-everything": (run(threshold=0.2), ValueError, "threshold"),
    "train_subset-larger-than-data": (run(train_subset=70_000), ValueError, "train_subset"),
    "batch-larger-than-train-set": (run(batch_size=512), ValueError, "batch_size"),
    "batch_size-numpy-zero": (run(batch_size=np.int64(0)), ValueError, "batch_size"),
    "validation_size-all": (run(validation_size=60_000), ValueError, "validation_size"),
    "momentum-1.5": (run(optimizer="sgd", momentum=1.5), ValueError, "momentum"),
    "weights-nan": (run(weights=(NAN, 0.1)), ValueError, "weights[0]"),
    "model-unknown": (run(model="mlp"), ValueError, "model"),
    "dataset-unknown": (run(dataset="imagenet"), ValueError, "dataset"),
    # run_experiment / run_sweep arguments
    "run_experiment-recompute-string": (lambda tmp, m: run_experiment(RunConfig(**TINY), cache_dir=tmp,
                                                                     recompute="yes"), TypeError, "recompute"),
    "sweep-empty": (lambda tmp, m: run_sweep([], cache_dir=tmp), ValueError, "configs"),
    "sweep-not-a-config": (lambda tmp, m: run_sweep(["mnist"], cache_dir=tmp), TypeError, "configs[0]"),
    "sweep-cached_only-string": (lambda tmp, m: run_sweep([RunConfig(**TINY)], cache_dir=tmp, cached_only="True"),
                                 TypeError, "cached_only"),
    "sweep-cached_only-empty-cache": (lambda tmp, m: run_sweep([RunConfig(**TINY)], cache_dir=tmp, cached_only=True,
                                                               progress=False), LookupError, "cached_only"),
    "cache-unwritable": (lambda tmp, m: (tmp / "file").write_text("x") and run_experiment(
        RunConfig(**TINY), cache_dir=tmp / "file" / "cache", progress=False), OSError, "cache"),
    # the sweeps of the notebooks
    "smgd-dataset-imagenet": (lambda tmp, m: experiments.smgd_comparison("imagenet"), ValueError, "dataset"),
    "smgd-epochs-0": (lambda tmp, m: experiments.smgd_comparison("mnist", epochs=0), ValueError, "epochs"),
    "smgd-seeds-empty": (lambda tmp, m: experiments.smgd_comparison("mnist", seeds=[]), ValueError, "seeds"),
    "smgd-seeds-string": (lambda tmp, m: experiments.smgd_comparison("mnist", seeds="[0]"), TypeError, "-y"),
    "smgd-itp-bool": (lambda tmp, m: experiments.smgd_comparison("mnist", itp=True), TypeError, "itp"),
    "smgd-learning_rates-negative": (lambda tmp, m: experiments.smgd_comparison(
        "mnist", learning_rates={"smgd": -1.0}), ValueError, "learning_rates"),
    "grid-lambda2-nan": (lambda tmp, m: experiments.weighted_sum_run(NAN), ValueError, "lambda2"),
    "grid-dense_points-float": (lambda tmp, m: experiments.weighted_sum_grid(dense_points=2.5), TypeError,
                                "dense_points"),
    # trained_model
    "trained-lr-negative": (trained(learning_rate=-1e-3), ValueError, "learning_rate"),
    "trained-epochs-ten": (trained(epochs="ten"), TypeError, "epochs"),
    "trained-batch-0": (trained(batch_size=0), ValueError, "batch_size"),
    "trained-model-unknown": (trained(model_name="resnet"), ValueError, "model_name"),
    "trained-subset-too-large": (trained(train_subset=10 ** 6), ValueError, "train_subset"),
    "trained-optimizer-unknown": (trained(optimizer="adagrad"), ValueError, "optimizer"),
    # pruning to a budget
    "budget-0": (budget_call(budget=0.0), ValueError, "budget"),
    "budget-nan": (budget_call(budget=NAN), ValueError, "budget"),
    "budget-1.5": (budget_call(budget=1.5), ValueError, "budget"),
    "budget-string": (budget_call(budget="0.5"), TypeError, "budget"),
    "budget-methods-unknown": (budget_call(methods=["rl", "magic"]), ValueError, "methods[1]"),
    "budget-updates-0": (budget_call(updates=0), ValueError, "updates"),
    "budget-eval_size-string": (budget_call(eval_size="10"), TypeError, "eval_size"),
    "agent-budget-nan": (lambda tmp, m: pruning.budget.LagrangianPolicyGradient(4, NAN), ValueError, "budget"),
    "budget-granularity-unknown": (budget_call(granularity="channel"), ValueError, "granularity"),
    # post-training, structured, GMP, ITP
    "post-ks-1.5": (lambda tmp, m: experiments.post_training_sweep(m, None, ks=[0.0, 1.5]), ValueError, "ks[1]"),
    "structure-targets-negative": (lambda tmp, m: experiments.structure_sweep(m, None, targets=[-0.1]), ValueError,
                                   "targets[0]"),
    "gmp-final-1.2": (lambda tmp, m: pruning.GradualMagnitudePruning(m, 1.2, end_step=10), ValueError,
                      "final_sparsity"),
    "gmp-frequency-float": (lambda tmp, m: pruning.GradualMagnitudePruning(m, 0.5, end_step=10, frequency=0.5),
                            TypeError, "frequency"),
    "masks_for-nan": (lambda tmp, m: pruning.masks_for(m, NAN), ValueError, "amount"),
    "itp-threshold-nan": (lambda tmp, m: pruning.enable_itp(m, threshold=NAN), ValueError, "threshold"),
    # notebook parameters (papermill)
    "nb-epochs-0": (notebook({"epochs": 0}, epochs=Int(1)), ValueError, "epochs"),
    "nb-epochs-ten": (notebook({"epochs": "ten"}, epochs=Int(1)), TypeError, "epochs"),
    "nb-seeds-string": (notebook({"seeds": "[0]"}, seeds=List(Int(0))), TypeError, "-y 'seeds"),
    "nb-seeds-empty": (notebook({"seeds": []}, seeds=Optional(List(Int(0)))), ValueError, "seeds"),
    "nb-dataset-imagenet": (notebook({"dataset": "imagenet"}, dataset=Choice("mnist", "cifar10")), ValueError,
                            "dataset"),
    "nb-ks-1.5": (notebook({"ks": [0.0, 1.5]}, ks=List(validation.Fraction())), ValueError, "ks[1]"),
    "nb-lr-bool": (notebook({"learning_rate": True}, learning_rate=Float(0, min_open=True)), TypeError,
                   "learning_rate"),
    "nb-missing": (notebook({}, epochs=Int(1)), NameError, "epochs"),
    # unknown papermill parameters, with the closest valid name
    "nb-unknown-epoch": (papermill("04_pareto_front", epoch=3), TypeError, "did you mean 'epochs'?"),
    "nb-unknown-widht": (papermill("07_structured_global_iterative", widht=0.5), TypeError, "did you mean 'width'?"),
    "nb-unknown-learningrate": (papermill("06_post_training_pruning", learningrate=0.1), TypeError,
                                "did you mean 'learning_rate'?"),
    "nb-unknown-per_clas": (papermill("02_data_and_models", per_clas=10), TypeError, "did you mean 'per_class'?"),
    "nb-unknown-far-from-any": (papermill("01_biobjective_problem", zzz=1), TypeError, "'zzz'"),
    # upper bounds of count parameters
    "nb-per_class-200000": (papermill("02_data_and_models", per_class=200_000), ValueError, "per_class"),
    "nb-per_class-above-mnist-smallest-class": (papermill("02_data_and_models", per_class=5500), ValueError,
                                                "per_class"),
    "nb-dense_points-million": (papermill("04_pareto_front", dense_points=10 ** 6), ValueError, "dense_points"),
    "nb-epochs-million": (papermill("04_pareto_front", epochs=10 ** 6), ValueError, "epochs"),
    "nb-workers-million": (papermill("03_smgd", workers=10 ** 6), ValueError, "workers"),
    "nb-latency_batch-10M": (papermill("07_structured_global_iterative", latency_batch=10 ** 7), ValueError,
                             "latency_batch"),
    "nb-latency_repeats-billion": (papermill("06_post_training_pruning", latency_repeats=10 ** 9), ValueError,
                                   "latency_repeats"),
    "nb-updates-billion": (papermill("08_budget_constrained_pruning", updates=10 ** 9), ValueError, "updates"),
    "nb-train_subset-above-cifar": (papermill("03_smgd", dataset="cifar10", train_subset=55_000), ValueError,
                                    "train_subset"),
    "nb-seed-2**32": (papermill("01_biobjective_problem", seed=2 ** 32), ValueError, "seed"),
    "nb-learning_rate-huge": (papermill("04_pareto_front", learning_rate=HUGE), ValueError, "learning_rate"),
    "nb-keyword-spec-huge": (notebook({"learning_rate": HUGE}, learning_rate=Float(0, min_open=True)), ValueError,
                             "learning_rate"),
    "image_grid-per_class-above-class-size": (lambda tmp, m: plotting.image_grid(
        np.zeros((20, 28, 28, 1)), np.arange(20) % 10, data.CLASS_NAMES["mnist"], per_class=3), ValueError,
        "per_class"),
    # every procedure that takes epochs checks them like RunConfig
    "knee-config-epochs-0": (lambda tmp, m: experiments.KneeSearch().config((1.0, 0.0), epochs=0), ValueError,
                             "epochs"),
    "knee-epochs-0": (lambda tmp, m: experiments.KneeSearch(epochs=0), ValueError, "epochs"),
    "knee-knee_epochs-0": (lambda tmp, m: experiments.KneeSearch().knees({}, knee_epochs=0), ValueError,
                           "knee_epochs"),
    "knee-seeds-empty": (lambda tmp, m: experiments.KneeSearch().knee_seeds({}, seeds=[]), ValueError, "seeds"),
    "knee-max_history-0": (lambda tmp, m: experiments.KneeSearch(max_history=0), ValueError, "max_history"),
    "knee-grid-strings": (lambda tmp, m: experiments.KneeSearch(grid_lambda2=("a", "b")), TypeError,
                          "grid_lambda2"),
    "lr_ablation-epochs-0": (lambda tmp, m: experiments.lr_ablation(epochs=0), ValueError, "epochs"),
    "post-training-epochs-0": (lambda tmp, m: experiments.PostTraining(0, 128, 1e-3), ValueError, "epochs"),
    "structure-study-epochs-0": (lambda tmp, m: experiments.StructureStudy(0.25, 0, 4, 1e-3), ValueError, "epochs"),
    "budget-pruning-epochs-0": (lambda tmp, m: experiments.BudgetPruning(
        {"lenet5": dict(epochs=0, batch_size=32, learning_rate=1e-3, train_subset=None)}, {"lenet5": (2, 2)}, ["rl"]),
        ValueError, "epochs"),
    "budget-pruning-finetune_epochs-string": (lambda tmp, m: experiments.BudgetPruning(
        {"lenet5": dict(epochs=1, batch_size=32, learning_rate=1e-3, train_subset=None)}, {"lenet5": (2, 2)}, ["rl"],
        finetune_epochs="1"), TypeError, "finetune_epochs"),
    "smgd-epochs-huge": (lambda tmp, m: experiments.smgd_comparison("mnist", epochs=HUGE), ValueError, "epochs"),
    # huge numbers: the package's own error, never a bare OverflowError
    "learning_rate-huge": (run(learning_rate=HUGE), ValueError, "learning_rate"),
    "epochs-huge": (run(epochs=HUGE), ValueError, "epochs"),
    "seed-2**32": (run(seed=2 ** 32), ValueError, "seed"),
    "threshold-huge": (run(threshold=HUGE), ValueError, "threshold"),
    "weights-huge": (run(weights=(HUGE, 0.1)), ValueError, "weights[0]"),
    "trained-lr-huge": (trained(learning_rate=HUGE), ValueError, "learning_rate"),
    "trained-seed-2**32": (trained(seed=2 ** 32), ValueError, "seed"),
    "masks_for-huge": (lambda tmp, m: pruning.masks_for(m, HUGE), ValueError, "amount"),
    "masks_for-per-layer-huge": (lambda tmp, m: pruning.masks_for(m, [HUGE] * 5), ValueError, "amount[0]"),
    # a cache folder that cannot be created fails before training, naming the path
    "cache-symlink-under-a-file": (symlinked_cache(lambda tmp: tmp / "file" / "cache"), NotADirectoryError, "file"),
    "cache-symlink-loop": (symlinked_cache(lambda tmp: tmp / "link"), OSError, "loop"),
    # data loading arguments
    "load-subset-float": (lambda tmp, m: _REAL_LOAD("mnist", train_subset=1.5), TypeError,
                          "train_subset"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected_before_any_work(case, no_work, lenet, tmp_path, monkeypatch):
    call, error, name = CASES[case]
    with pytest.raises(error) as info:
        call(tmp_path, lenet)
    assert name in str(info.value), f"the message does not name {name!r}: {info.value}"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "failed").exists()


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


def test_messages_say_what_is_allowed():
    with pytest.raises(ValueError) as info:
        RunConfig(epochs=0).resolved()
    assert str(info.value) == "epochs must be an int >= 1 and <= 1000, got 0 (int)"
    with pytest.raises(TypeError, match=r"pass lists to papermill with -y, e\.g\. -y 'seeds: \[0, 1\]'"):
        validation.check_int_list("seeds", "[0]")
    with pytest.raises(ValueError, match="must be one of 'mnist', 'cifar10'"):
        validation.check_choice("dataset", "imagenet", ("mnist", "cifar10"))
    assert validation.check_int("n", np.int64(3)) == 3 and type(validation.check_int("n", np.int64(3))) is int
    assert validation.check_bool("b", np.bool_(True)) is True
    assert validation.check_float("x", np.float32(0.5), 0, 1) == 0.5


def _write(path, **arrays):
    np.savez(path, **arrays)


def _mnist_like(n=20, **changes):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), y_train=np.arange(n) % 10,
                  x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_test=np.arange(5) % 10)
    arrays.update(changes)
    return arrays


@pytest.mark.parametrize("changes, match", [
    (dict(y_train=np.arange(20) % 10 + 1), r"labels in \[1, 10\]"),
    (dict(y_test=-np.ones(5, "int64")), "labels in"),
    (dict(y_train=np.arange(19) % 10), "20 images but y_train has 19"),
    (dict(x_train=np.random.default_rng(0).random((20, 28, 28)).astype("float32")), r"already scaled to \[0, 1\]"),
    (dict(x_train=np.zeros((20, 32, 32, 3), np.uint8)), "shape"),
    (dict(x_test=np.full((5, 28, 28), 300.0)), "0..255"),
    (dict(y_train=np.arange(20) % 10 + 0.5), "non-integer"),
])
def test_bad_data_files_are_rejected_on_load_with_the_file_named(changes, match, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.Model, "fit", _work_started)
    _write(tmp_path / "mnist.npz", **_mnist_like(**changes))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataError, match=match) as info:
        data.load_dataset("mnist")
    assert str(tmp_path / "mnist.npz") in str(info.value)


def test_truncated_data_file_is_named(tmp_path, monkeypatch):
    _write(tmp_path / "mnist.npz", **_mnist_like())
    raw = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(raw[: len(raw) // 2])
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataError, match="cannot read the dataset file") as info:
        data.load_dataset("mnist")
    assert "mnist.npz" in str(info.value)

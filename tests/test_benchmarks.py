"""The benchmark scripts' own guards (``benchmarks/`` is not a package: imported by path)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.cache import cached
from helpers.runner import RunFailedError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.needs_data("mnist")
def test_a_diverged_gmp_is_an_error_never_a_cached_accuracy(tmp_path, monkeypatch):
    import frontier

    build = frontier.lenet5

    def diverged_lenet5(*args, **kwargs):
        model = build(*args, **kwargs)
        kernel = model.get_layer("denselayer3").kernel
        kernel.assign(np.full(kernel.shape, np.nan, "float32"))
        return model

    monkeypatch.setattr(frontier, "lenet5", diverged_lenet5)
    config = dict(final_sparsity=0.5, epochs=1, train_subset=64)
    with pytest.raises(RunFailedError, match="non-finite"):
        cached("benchmark_gmp_keras3", config, lambda: frontier.our_gmp(**config), cache_dir=tmp_path)
    assert not list((tmp_path / "tables").glob("*.json"))


def test_architectures_benchmark_compacts_and_agrees_across_backends(tmp_path, monkeypatch):
    """benchmarks/architectures.py end to end on its Transformer block at one amount: TensorFlow
    writes the weights and masks, JAX loads them; both compact exactly and agree."""
    import csv

    import architectures
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    architectures.main(["--models", "transformer_block", "--amounts", "0.5", "--repeats", "1", "--threads", "0",
                        "--backends", "tensorflow", "jax", "--output", "architectures-test.csv", "--work", str(tmp_path / "work")])
    with open(tmp_path / "architectures-test.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["backend"] for r in rows] == ["tensorflow", "jax"]
    for row in rows:
        assert row["compacted"] == "True", row
        assert float(row["max_rel_diff"]) <= 1e-5 and float(row["max_rel_diff_vs_tensorflow"]) <= 1e-5
        assert int(row["params_compact"]) < int(row["params"]) and 0 < float(row["flop_ratio"]) < 1
    assert not list(tmp_path.glob("masks_for_speed.csv"))  # the extras run only for the real table

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

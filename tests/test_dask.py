"""run_sweep on a Dask LocalCluster of two processes gives the sequential sweep's results."""

import pytest

from helpers.run_config import RunConfig
from helpers.sweep import run_sweep

distributed = pytest.importorskip("distributed")

CONFIGS = [RunConfig(optimizer=name, epochs=1, train_subset=256, eval_train=False) for name in ("madam", "sgd")]
TIMINGS = {"train_seconds"}


def _numbers(result):
    history = {k: v for k, v in result.history.items() if k != "epoch_seconds"}
    return {k: v for k, v in result.summary.items() if k not in TIMINGS}, history


def _flat(value, prefix=""):
    """``{path: number}`` of every number in nested dicts/lists/tuples (None kept as None)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}/{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def test_sweep_on_a_local_cluster_equals_the_sequential_one(tmp_path):
    sequential = run_sweep(CONFIGS, cache_dir=tmp_path / "sequential", progress=False)
    from helpers.sweep import dask_executor

    client = dask_executor(workers=2)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        spread = run_sweep(CONFIGS, cache_dir=tmp_path / "dask", progress=False, executor=client)
    finally:
        client.close()
        client._mo_pruning_cluster.close()
    assert [r.config for r in spread] == [c.resolved() for c in CONFIGS]  # config order
    assert all(not r.from_cache for r in spread)
    # Equal up to float32 reduction order: in a long pytest session the in-process run can differ
    # from a fresh worker process in the last bits (seen: the biases' l1 norm at 7e-8 relative);
    # every count (nonzeros per layer) and every other number must agree.
    got, expected = _flat([_numbers(r) for r in spread]), _flat([_numbers(r) for r in sequential])
    assert got.keys() == expected.keys()
    numbers = [k for k, v in expected.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert {k: got[k] for k in numbers} == pytest.approx({k: expected[k] for k in numbers}, rel=1e-6, abs=1e-9, nan_ok=True)
    assert {k: got[k] for k in expected if k not in numbers} == {k: v for k, v in expected.items() if k not in numbers}
    assert [r.summary["nnz_dense"] for r in spread] == [r.summary["nnz_dense"] for r in sequential]
    assert sorted(p.name for p in (tmp_path / "dask" / "runs").iterdir()) == \
        sorted(p.name for p in (tmp_path / "sequential" / "runs").iterdir())
    # a second sweep on an executor finds everything in the shared cache
    again = run_sweep(CONFIGS, cache_dir=tmp_path / "dask", progress=False, executor=1)
    assert all(r.from_cache for r in again)

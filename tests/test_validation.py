"""``validation.validated`` (one idiom for checking a function's arguments) and the ``Study`` shape
(``helpers.experiments.study``): settings checked when built, one cache configuration per result."""

import re
from dataclasses import FrozenInstanceError, dataclass

import numpy as np
import pytest

from helpers.cache import config_hash
from helpers.experiments.study import Study, setting
from helpers.validation import Bool, Choice, Epochs, Float, Int, List, Optional, Seed, validated


@validated(epochs=Epochs(), seeds=List(Seed(), unique=True), rate=Float(0.0, min_open=True), name=Choice("a", "b"))
def _sweep(epochs, seeds=(0,), rate=1e-3, *, name="a", note=None):
    return epochs, seeds, rate, name, note


def test_validated_passes_the_normalised_values():
    assert _sweep(np.int64(3), (1, 2), rate=1, name="b", note="x") == (3, [1, 2], 1.0, "b", "x")
    epochs, seeds, rate, name, _ = _sweep(2)
    assert (epochs, seeds, rate, name) == (2, [0], 1e-3, "a") and type(epochs) is int and type(seeds) is list


@pytest.mark.parametrize("call, error, named", [
    (lambda: _sweep(0), ValueError, "epochs"),
    (lambda: _sweep(True), TypeError, "epochs"),
    (lambda: _sweep(1, [0, 0]), ValueError, "seeds"),
    (lambda: _sweep(1, "[0]"), TypeError, "seeds"),
    (lambda: _sweep(1, [-1]), ValueError, "seeds[0]"),
    (lambda: _sweep(1, rate=float("nan")), ValueError, "rate"),
    (lambda: _sweep(1, name="c"), ValueError, "unknown name"),
])
def test_validated_rejects_each_bad_argument_by_name(call, error, named):
    with pytest.raises(error, match=rf"^{re.escape(named)} "):
        call()


def test_validated_keeps_the_signature_and_rejects_wrong_calls():
    import inspect

    assert list(inspect.signature(_sweep).parameters) == ["epochs", "seeds", "rate", "name", "note"]
    assert _sweep.__name__ == "_sweep" and set(_sweep.specs) == {"epochs", "seeds", "rate", "name"}
    with pytest.raises(TypeError):
        _sweep(1, unknown=2)
    with pytest.raises(TypeError, match="does not take"):
        validated(epoch=Epochs())(lambda epochs: epochs)


def test_validated_checks_defaults_and_methods():
    @validated(k=Int(1))
    def bad_default(k=0):
        return k

    with pytest.raises(ValueError, match="k must be an int >= 1"):
        bad_default()

    class Box:
        @validated(size=Int(1))
        def grow(self, size):
            return size

    assert Box().grow(np.int32(4)) == 4
    with pytest.raises(ValueError, match="size"):
        Box().grow(0)


@dataclass(frozen=True)
class _Toy(Study):
    """A study with a legacy field: ``mode`` joined the key later, and its default is left out so
    that results cached before it keep their keys."""

    epochs: int = setting(Epochs())
    seed: int = setting(Seed(), 0)
    mode: str = setting(Choice("old", "new"), "old")
    subset: int | None = setting(Optional(Int(1)), None)
    recompute: bool = setting(Bool(), False, key=False)

    def legacy(self, config):
        if config["mode"] == "old":
            del config["mode"]
        return config

    def check(self):
        if self.subset is not None and self.subset < self.epochs:
            raise ValueError(f"subset must be >= epochs ({self.epochs}), got {self.subset}")


def test_a_study_is_checked_normalised_and_frozen():
    toy = _Toy(np.int64(2), seed=np.uint8(3))
    assert (toy.epochs, toy.seed) == (2, 3) and type(toy.epochs) is int
    with pytest.raises(FrozenInstanceError):
        toy.epochs = 3
    for kwargs, error, named in [(dict(epochs=0), ValueError, "epochs"), (dict(epochs=1, seed=-1), ValueError, "seed"),
                                 (dict(epochs=1, mode="x"), ValueError, "mode"),
                                 (dict(epochs=1, recompute=1), TypeError, "recompute"),
                                 (dict(epochs=5, subset=4), ValueError, "subset")]:
        with pytest.raises(error, match=named):
            _Toy(**kwargs)


def test_a_studys_key_is_its_settings_through_the_legacy_hook():
    toy = _Toy(2, seed=1)
    assert toy.settings() == dict(epochs=2, seed=1, mode="old", subset=None)  # recompute is not a setting
    assert toy.config(table_point=0.5) == dict(epochs=2, seed=1, subset=None, table_point=0.5)
    assert toy.key(table_point=0.5) == config_hash(dict(epochs=2, seed=1, subset=None, table_point=0.5))
    assert _Toy(2, seed=1, recompute=True).key() == toy.key()  # recomputing does not change what is stored
    assert _Toy(2, seed=1, mode="new").config() == dict(epochs=2, seed=1, mode="new", subset=None)
    assert len({_Toy(2).key(), _Toy(3).key(), _Toy(2, seed=1).key(), _Toy(2, mode="new").key()}) == 4


def test_a_study_caches_each_result_under_its_key(tmp_path):
    toy, calls = _Toy(2), []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    assert toy.cached("toy", compute, cache_dir=tmp_path, point=1) == ({"value": 1}, False)
    assert toy.cached("toy", compute, cache_dir=tmp_path, point=1) == ({"value": 1}, True)
    assert toy.cached("toy", compute, cache_dir=tmp_path, point=2) == ({"value": 2}, False)
    assert toy.cached("toy", compute, cache_dir=tmp_path, cached_only=True, point=3) == (None, False)
    assert _Toy(2, recompute=True).cached("toy", compute, cache_dir=tmp_path, point=1) == ({"value": 3}, False)
    assert (tmp_path / "tables" / f"toy-{toy.key(point=1)}.json").exists() and len(calls) == 3

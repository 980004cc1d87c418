"""The resumable pre-training recipe of ``experiments.trained_model`` (augmentation, a cosine
rate, a checkpoint after every epoch): a run interrupted after any epoch and resumed ends with
exactly the weights of an uninterrupted run; a corrupt checkpoint is moved aside, never loaded."""

import numpy as np
import pytest

from helpers import data as data_lib
from helpers import experiments
from helpers.cache import ResultCache
from helpers.experiments import training

ARGS = dict(model_name="mlp", dataset="mnist", epochs=3, batch_size=16, learning_rate=1e-2, train_subset=64,
            progress=False, augment=True, lr_schedule="cosine")


def test_augment_crop_flip_against_a_per_image_reference():
    x = np.random.default_rng(1).random((40, 6, 5, 2), dtype=np.float32)
    out = data_lib.augment_crop_flip(x, np.random.default_rng(7), pad=2)
    rng = np.random.default_rng(7)  # the same draws, in the function's order
    rows, cols, flip = rng.integers(0, 5, 40), rng.integers(0, 5, 40), rng.random(40) < 0.5
    for i in range(40):
        padded = np.zeros((10, 9, 2), np.float32)
        padded[2:8, 2:7] = x[i]
        expected = padded[rows[i]:rows[i] + 6, cols[i]:cols[i] + 5]
        np.testing.assert_array_equal(out[i], expected[:, ::-1] if flip[i] else expected)
    assert 0 < flip.sum() < 40 and len(set(rows)) > 1  # both branches were exercised


def test_the_recipe_has_its_own_key_and_leaves_older_keys_alone():
    plain = training.weights_name("mlp", "mnist", 3, 16, 1e-2)
    assert plain == training.weights_name("mlp", "mnist", 3, 16, 1e-2, augment=False, lr_schedule="constant")
    assert len({plain, training.weights_name("mlp", "mnist", 3, 16, 1e-2, augment=True),
                training.weights_name("mlp", "mnist", 3, 16, 1e-2, lr_schedule="cosine")}) == 3


class Interrupt(Exception):
    pass


def _interrupt_after(monkeypatch, epochs_done):
    """Make the recipe's ``fit`` raise at the call after ``epochs_done`` epochs (a killed process)."""
    import keras

    calls = {"n": 0}
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        if calls["n"] == epochs_done:
            raise Interrupt
        calls["n"] += 1
        return original(self, *args, **kwargs)
    monkeypatch.setattr(keras.Model, "fit", fit)
    return lambda: monkeypatch.setattr(keras.Model, "fit", original)


@pytest.mark.parametrize("epochs_done", [1, 2])
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(fake_mnist, monkeypatch, epochs_done):
    reference, _ = experiments.trained_model(**ARGS, seed=3, recompute=True)
    expected = [w.copy() for w in reference.get_weights()]
    ResultCache().path("models", training.weights_name("mlp", "mnist", 3, 16, 1e-2, 3, 64, augment=True,
                                                       lr_schedule="cosine")).unlink()
    restore = _interrupt_after(monkeypatch, epochs_done)
    with pytest.raises(Interrupt):
        experiments.trained_model(**ARGS, seed=3)
    restore()
    partial = sorted(p.name for p in (ResultCache().root / "partial").iterdir())
    assert len(partial) == 2 and any(p.endswith(f"-e{epochs_done}.weights.h5") for p in partial)
    resumed, _ = experiments.trained_model(**ARGS, seed=3)
    for got, want in zip(resumed.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    assert not list((ResultCache().root / "partial").iterdir())  # the checkpoint is gone once finished
    history = training.pretraining_history(training.weights_name("mlp", "mnist", 3, 16, 1e-2, 3, 64, augment=True,
                                                                  lr_schedule="cosine"))
    assert len(history) == 3 and all(row["seconds"] > 0 for row in history)


def test_a_corrupt_checkpoint_is_moved_aside_and_training_starts_afresh(fake_mnist, monkeypatch):
    reference, _ = experiments.trained_model(**ARGS, seed=4, recompute=True)
    expected = [w.copy() for w in reference.get_weights()]
    name = training.weights_name("mlp", "mnist", 3, 16, 1e-2, 4, 64, augment=True, lr_schedule="cosine")
    ResultCache().path("models", name).unlink()
    restore = _interrupt_after(monkeypatch, 1)
    with pytest.raises(Interrupt):
        experiments.trained_model(**ARGS, seed=4)
    restore()
    weights = next((ResultCache().root / "partial").glob("*-e1.weights.h5"))
    weights.write_bytes(b"not an HDF5 file")
    with pytest.warns(Warning, match="could not be restored|not an HDF5|OSError|Unable"):
        again, _ = experiments.trained_model(**ARGS, seed=4)
    for got, want in zip(again.get_weights(), expected):  # trained from the start, not half-loaded
        np.testing.assert_array_equal(got, want)
    assert list((ResultCache().root / "partial").glob("*.corrupt-*"))

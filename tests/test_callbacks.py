"""Callbacks with plain model.fit: c1/c2 per batch and per epoch, train-set evaluation, timing, the
divergence guard."""

import keras
import numpy as np
import pytest

from helpers import models
from helpers.callbacks import DatasetEvaluator, Diverged, EpochTimer, MultiGradientWeightsLogger, NonFiniteGuard
from helpers.objectives import SparsityObjective
from helpers.optimizers import MAdam


def test_weights_logger_batch_values_average_to_epoch_means(tiny_images):
    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer=MAdam(1e-3, SparsityObjective.from_model(model)), loss="sparse_categorical_crossentropy")
    logger = MultiGradientWeightsLogger(per_batch=True)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[logger])
    assert len(logger.batch_c2) == 8
    np.testing.assert_allclose(history.history["c2"], [np.mean(logger.batch_c2[:4]), np.mean(logger.batch_c2[4:])],
                               rtol=1e-5)
    np.testing.assert_allclose(np.add(logger.batch_c1, logger.batch_c2), 1.0, rtol=1e-6)


def test_weights_logger_needs_a_multi_gradient_optimizer(tiny_images):
    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="SMGD/MAdam/MRMSprop"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[MultiGradientWeightsLogger()])


def test_dataset_evaluator_and_timer(tiny_images):
    x, y = tiny_images
    model = models.vgg(input_shape=(28, 28, 1))  # has dropout and BN: inference mode matters
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[EpochTimer(), DatasetEvaluator(x, y, prefix="train_")])
    h = history.history
    assert len(h["epoch_seconds"]) == 2 and all(t > 0 for t in h["epoch_seconds"])
    # the evaluator sees the same data in the same (inference) mode as validation does
    np.testing.assert_allclose(h["train_accuracy"], h["val_accuracy"], rtol=1e-6)
    np.testing.assert_allclose(h["train_loss"], h["val_loss"], rtol=1e-5)


def _poison_at(epoch_to_poison):
    """A callback that writes a NaN into the first kernel at the end of one epoch (1-based)."""
    def poison(epoch, logs):
        if epoch + 1 == epoch_to_poison:
            model = poisoner.model
            kernel = model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    poisoner = keras.callbacks.LambdaCallback(on_epoch_end=poison)
    return poisoner


@pytest.mark.parametrize("mode", ["raise", "stop"])
def test_non_finite_guard_stops_at_the_first_diverged_epoch(tiny_images, mode):
    """Like TerminateOnNaN, but at epoch end on the loss and every weight: a NaN weight with a finite
    loss is caught in the epoch it appears; "raise" raises Diverged, "stop" records it and stops."""
    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    guard = NonFiniteGuard(on_divergence=mode)
    epochs = []
    counter = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch + 1))
    callbacks = [counter, _poison_at(2), guard]
    if mode == "raise":
        with pytest.raises(Diverged, match="non-finite values") as info:
            model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=callbacks)
        assert info.value.epoch == 2
    else:
        history = model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=callbacks)
        assert len(history.history["loss"]) == 2
    assert epochs == [1, 2] and guard.epoch == 2 and "(diverged)" in guard.reason


def test_non_finite_guard_leaves_a_finite_run_alone(tiny_images):
    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    guard = NonFiniteGuard()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[guard])
    assert len(history.history["loss"]) == 2 and guard.reason is None
    with pytest.raises(ValueError, match="on_divergence"):
        NonFiniteGuard(on_divergence="ignore")

"""Callbacks with plain model.fit: c1/c2 per batch and per epoch, train-set evaluation, timing."""

import keras
import numpy as np
import pytest

from helpers import models
from helpers.callbacks import DatasetEvaluator, EpochTimer, MultiGradientWeightsLogger
from helpers.objectives import DensePenalty
from helpers.optimizers import MAdam


def test_weights_logger_batch_values_average_to_epoch_means(tiny_images):
    x, y = tiny_images
    model = models.lenet5()
    model.compile(optimizer=MAdam(1e-3, DensePenalty.from_model(model)), loss="sparse_categorical_crossentropy")
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

"""Learning-rate schedules of the original code, as Keras 3 ``LearningRateSchedule`` objects.

Keras 3 optimizers have no ``decay`` argument and ``LearningRateScheduler`` cannot drive a
schedule object, so the paper's rate (REPRODUCTION_NOTES.md §6)

    lr(k) = eta0 * S(floor(k / steps_per_epoch)) / (1 + delta * k)

is computed in-graph from the optimizer's iteration counter k. It works with every Keras
optimizer (built-in Adam/SGD too) and with plain ``model.fit``.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def logistic_factor(epoch, epochs):
    """S(e) of REPRODUCTION_NOTES.md §6: 1 at e=0, then 1 - 0.9 sigmoid((e - 0.75E) / (0.075E)).

    Works on Python numbers and on tensors (epoch may be a tensor).
    """
    middle = 0.75 * epochs
    frame = middle / 10.0
    if isinstance(epoch, (int, float)):
        if epoch == 0:
            return 1.0
        return 1.0 - 0.9 / (1.0 + math.exp(-(epoch - middle) / frame))
    epoch = ops.cast(epoch, "float32")
    value = 1.0 - 0.9 * ops.sigmoid((epoch - middle) / frame)
    return ops.where(ops.equal(epoch, 0.0), ops.ones_like(value), value)


@keras.saving.register_keras_serializable(package="helpers")
class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """eta0 * S(epoch) / (1 + decay * k): logistic per-epoch factor and Keras-2 inverse-time decay.

    Args:
        initial_learning_rate: eta0.
        steps_per_epoch: batches per epoch (``ceil(n_train / batch_size)``).
        epochs: E of the logistic schedule (30 for MNIST, 125 for CIFAR in the paper).
        decay: delta, per-iteration inverse-time decay (Keras 2's ``decay`` argument).
        logistic: apply S(e); ``False`` leaves only the decay (CIFAR SMGD, REPRODUCTION_NOTES.md, B5).
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, epochs, decay=0.0, logistic=True):
        if initial_learning_rate <= 0:
            raise ValueError(f"learning rate must be > 0, got {initial_learning_rate}")
        if steps_per_epoch < 1 or epochs < 1:
            raise ValueError("steps_per_epoch and epochs must be >= 1")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.decay = float(decay)
        self.logistic = bool(logistic)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.initial_learning_rate, "float32")
        if self.logistic:
            epoch = ops.floor(step / self.steps_per_epoch)
            lr = lr * logistic_factor(epoch, self.epochs)
        if self.decay:
            lr = lr / (1.0 + self.decay * step)
        return lr

    def value(self, step):
        """The rate at iteration ``step`` as a Python float (for plots and tests)."""
        lr = self.initial_learning_rate
        if self.logistic:
            lr *= logistic_factor(step // self.steps_per_epoch, self.epochs)
        return lr / (1.0 + self.decay * step)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "steps_per_epoch": self.steps_per_epoch,
                "epochs": self.epochs, "decay": self.decay, "logistic": self.logistic}

"""Keras 3 callbacks that log what the paper plots; each works with plain ``model.fit``.

Values they add to ``logs`` at epoch end end up in ``model.fit(...).history`` (Keras
appends its History callback after the user's callbacks).
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from .cache import non_finite_values
from .optimizers import MultiGradientOptimizer
from .pruning import nonzero_counts


class MultiGradientWeightsLogger(keras.callbacks.Callback):
    """Epoch means of the optimizer's (c1, c2) as ``logs["c1"]``, ``logs["c2"]``.

    The optimizer accumulates c in-graph, so the mean costs one read per epoch. With
    ``per_batch=True`` every batch's values are also kept in ``self.batch_c1`` /
    ``self.batch_c2`` (one host read per batch).
    """

    def __init__(self, per_batch=False):
        super().__init__()
        self.per_batch = per_batch
        self.batch_c1, self.batch_c2 = [], []

    def _optimizer(self):
        optimizer = self.model.optimizer
        if not isinstance(optimizer, MultiGradientOptimizer):
            raise TypeError("MultiGradientWeightsLogger needs a SMGD/MAdam/MRMSprop optimizer, "
                            f"the model has {type(optimizer).__name__}")
        return optimizer

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self._optimizer()
        if optimizer.built:
            optimizer.c_sums.assign(np.zeros(2, "float32"))
            optimizer.c_count.assign(0.0)

    def on_train_batch_end(self, batch, logs=None):
        if self.per_batch:
            optimizer = self.model.optimizer
            self.batch_c1.append(float(optimizer.c1.numpy()))
            self.batch_c2.append(float(optimizer.c2.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self._optimizer()
        count = float(optimizer.c_count.numpy())
        if logs is not None and count > 0:
            c1, c2 = optimizer.c_sums.numpy() / count
            logs["c1"], logs["c2"] = float(c1), float(c2)


class NonzeroTracker(keras.callbacks.Callback):
    """Nonzero entries of every Dense kernel and bias, before training and after each epoch.

    ``self.kernel[layer]`` and ``self.bias[layer]`` are lists whose entry 0 is the state at
    the start of training (after ITP's initial prune, if any) and entry e the state after
    epoch e; kernels and biases are kept apart (REPRODUCTION_NOTES.md, B9). Kernel counts also go to
    ``logs["nnz/<layer>"]``.
    """

    def __init__(self):
        super().__init__()
        self.kernel, self.bias, self.size = {}, {}, {}

    def _record(self):
        for name, (kernel_nnz, bias_nnz, size) in nonzero_counts(self.model).items():
            self.kernel.setdefault(name, []).append(kernel_nnz)
            self.bias.setdefault(name, []).append(bias_nnz)
            self.size[name] = size

    def on_train_begin(self, logs=None):
        if not self.kernel:  # a second fit() call continues the same record
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._record()
        if logs is not None:
            for name, counts in self.kernel.items():
                logs[f"nnz/{name}"] = counts[-1]


class DatasetEvaluator(keras.callbacks.Callback):
    """Evaluate on a fixed set in inference mode at every epoch end (the original TestCallback).

    The paper's "train" curves come from such an evaluation over the full training set
    (no dropout, BN moving statistics), not from the running training metrics (REPRODUCTION_NOTES.md, B24).
    Metrics are logged with ``prefix`` (e.g. ``train_accuracy``).
    """

    def __init__(self, x, y, prefix="train_", batch_size=1024):
        super().__init__()
        self.x, self.y, self.prefix, self.batch_size = x, y, prefix, batch_size

    def on_epoch_end(self, epoch, logs=None):
        results = self.model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)
        if logs is not None:
            for key, value in results.items():
                logs[self.prefix + key] = float(value)


class EpochTimer(keras.callbacks.Callback):
    """Training seconds per epoch as ``logs["epoch_seconds"]``, validation excluded.

    Put it first in the callback list so that other callbacks' epoch-end work is not counted.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._stop = time.perf_counter(), None

    def on_test_begin(self, logs=None):  # fit's validation pass starts: training is over
        if getattr(self, "_stop", 0) is None:
            self._stop = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        stop = self._stop if self._stop is not None else time.perf_counter()
        if logs is not None:
            logs["epoch_seconds"] = stop - self._start


def non_finite_reason(model, logs=None):
    """Why the model's state is unusable (a non-finite loss or variable), or None."""
    for name, value in (logs or {}).items():
        if name in ("loss", "ce") and value is not None and not math.isfinite(float(value)):
            return f"training {name} is {float(value)} (diverged)"
    reason = non_finite_values((v.path, keras.ops.convert_to_numpy(v)) for v in model.variables)
    return f"{reason} (diverged)" if reason else None


class Diverged(RuntimeError):
    """Training diverged: ``reason`` says what is non-finite, ``epoch`` is the 1-based epoch after
    which it was found."""

    def __init__(self, reason, epoch=None):
        super().__init__(reason if epoch is None else f"epoch {epoch}: {reason}")
        self.reason, self.epoch = reason, epoch


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop at the first epoch whose loss or weights are not finite: Keras' ``TerminateOnNaN`` in
    shape, but checked at epoch end on the epoch's loss (``loss``, ``ce``) and on every model
    variable (``non_finite_reason``; ITP or a mask cannot hide a NaN in a weight), so a diverged
    network is never measured, checkpointed, cached or returned.

    ``on_divergence="raise"`` (default) raises ``Diverged(reason, epoch)`` out of ``fit``; callers
    turn it into their failure (the runner records it in ``failed/``, ``trained_model`` raises
    ``RunFailedError``). ``"stop"`` records it instead, like ``TerminateOnNaN``: ``reason`` and
    ``epoch`` are set and ``model.stop_training`` ends ``fit`` after that epoch. Put it after the
    callbacks that add to ``logs``; it reads them only."""

    def __init__(self, on_divergence="raise"):
        super().__init__()
        if on_divergence not in ("raise", "stop"):
            raise ValueError(f"on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
        self.on_divergence = on_divergence
        self.reason, self.epoch = None, None

    def on_epoch_end(self, epoch, logs=None):
        reason = non_finite_reason(self.model, logs)
        if reason is None:
            return
        self.reason, self.epoch = reason, epoch + 1
        if self.on_divergence == "raise":
            raise Diverged(reason, epoch + 1)
        self.model.stop_training = True

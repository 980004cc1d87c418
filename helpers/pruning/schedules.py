"""When to prune: one-shot, iterative (prune and retrain in cycles) and gradual magnitude
pruning during ``fit`` with the polynomial schedule of Zhu & Gupta (tfmot's semantics).

What to prune comes from ``criteria`` (or any ``model -> masks`` function); masks are held by
``masks.attach_masks``.
"""

from __future__ import annotations

import keras
import numpy as np

from ..layers import kernel_weights
from ..validation import Choice, Float, Fraction, List, check_bool, check_fraction, check_int
from .masks import apply_masks, attach_masks, step_holds_masks_as_constants
from .selection import prunable_layers

def polynomial_sparsity(step, initial_sparsity, final_sparsity, begin_step, end_step, power=3):
    """tfmot's ``PolynomialDecay`` sparsity at ``step`` (Zhu & Gupta 2017), in its float32 arithmetic:
    ``s_f + (s_i - s_f) (1 - p)^power`` with ``p = clip((step - begin) / (end - begin), 0, 1)``."""
    if end_step <= begin_step:
        raise ValueError("end_step must be > begin_step")
    f32 = np.float32
    progress = min(f32(1.0), max(f32(0.0), f32(step - begin_step) / f32(end_step - begin_step)))
    decay = np.power(f32(1.0) - progress, f32(power))
    return float(f32(f32(initial_sparsity - final_sparsity) * decay) + f32(final_sparsity))


def kept_count(size, sparsity):
    """How many weights tfmot keeps at ``sparsity``: ``max(round(size * (1 - s)), 1)``, float32,
    round half to even (``tf.math.round``)."""
    return max(int(np.round(np.float32(size) * (np.float32(1.0) - np.float32(sparsity)))), 1)


def top_magnitude_mask(values, sparsity):
    """tfmot's ``Pruning._update_mask``: keep every entry with ``|w| >=`` the ``k``-th largest
    ``|w|``, ``k = kept_count(size, sparsity)``; ties at the threshold are all kept."""
    flat = np.abs(np.asarray(values, dtype=np.float32)).ravel()
    k = kept_count(flat.size, sparsity)
    threshold = np.partition(flat, flat.size - k)[flat.size - k]
    return (flat >= threshold).reshape(np.shape(values))


class GradualMagnitudePruning(keras.callbacks.Callback):
    """Gradual magnitude pruning during ``model.fit``, step for step what tfmot 0.8's
    ``prune_low_magnitude`` + ``PolynomialDecay`` + ``UpdatePruningStep`` do, on Keras 3.

    tfmot's semantics (step counter, when masks change, the polynomial sparsity, which weights are
    kept and how many, what the optimizer sees, the epoch-end re-mask) are specified in
    ``REPRODUCTION_NOTES.md`` §13; how this callback reproduces them is below. In short: the
    ``i``-th training batch is step ``i``; masks are re-ranked on the raw kernels at steps
    ``begin_step + k * frequency <= end_step``, keeping the ``max(round(size * (1 - s(t))), 1)``
    largest ``|w|`` of each kernel; pruned weights receive their full gradient and can come back.

    Here, in-graph and with plain ``model.fit``: a ``PruningConstraint`` mask on each kernel zeroes the
    pruned entries after every optimizer step, which gives the same forward pass, gradients and
    optimizer state as masking before the next step. Only the ranking would differ, so on the
    batch before an update step the constraint's mask is set to ones (that step's optimizer update
    leaves the pruned entries where it moves them, as in tfmot), and at the update step
    (``on_train_batch_begin``, before the forward pass) the new masks are ranked on the raw
    kernels, applied and put back in the constraints. ``on_epoch_end`` re-masks like tfmot.
    Host work is two variable assignments per update, none on the other steps. On the JAX
    backend the jitted train step holds the mask as a constant, so it is traced again after each
    change of the constraints (twice per update: choose ``frequency`` accordingly).

    ``scope="global"`` (not in tfmot) ranks all selected kernels together with the same rule.
    The model must be passed so the constraints exist before the train step is traced: create
    the callback before calling ``fit``. Needs ``steps_per_execution=1`` (one callback per batch).
    ``sparsity_log`` records ``(t, s)`` at every mask update.
    """

    def __init__(self, model, final_sparsity, end_step, initial_sparsity=0.0, begin_step=0, frequency=100,
                 power=3, layers=None, include_output=False, scope="layer", ignored_layers=None):
        super().__init__()
        final_sparsity = check_fraction("final_sparsity", final_sparsity)
        initial_sparsity = check_fraction("initial_sparsity", initial_sparsity)
        begin_step = check_int("begin_step", begin_step, minimum=0)
        end_step = check_int("end_step", end_step, minimum=begin_step + 1)
        frequency = check_int("frequency", frequency, minimum=1)
        power = Float(0.0, min_open=True)("power", power)
        scope = Choice("layer", "global")("scope", scope)
        include_output = check_bool("include_output", include_output)
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.begin_step, self.end_step, self.frequency, self.power = begin_step, end_step, frequency, power
        self.scope = scope
        key_of = {id(ref.variable): ref.key for ref in kernel_weights(model)}  # unique, reload-stable keys
        self.kernels = [layer.kernel for layer in prunable_layers(model, layers, include_output, ignored_layers)]
        self.keys = [key_of[id(v)] for v in self.kernels]
        self.masks = {key: np.ones(v.shape, dtype=bool) for key, v in zip(self.keys, self.kernels)}
        self._constraints = attach_masks(model, self.masks)
        self._constraints_hold = "mask"  # or "ones" (the step before an update), None (stale)
        self.step = 0  # tfmot's pruning_step: training batches started so far
        self.sparsity_log = []

    def due(self, step):
        """tfmot's ``_should_prune_in_step``."""
        return self.begin_step <= step <= self.end_step and (step - self.begin_step) % self.frequency == 0

    def _ranked_masks(self, sparsity):
        values = [v.numpy() for v in self.kernels]
        if self.scope == "layer":
            return {key: top_magnitude_mask(value, sparsity) for key, value in zip(self.keys, values)}
        keep = top_magnitude_mask(np.concatenate([value.ravel() for value in values]), sparsity)
        masks, start = {}, 0
        for key, value in zip(self.keys, values):
            masks[key] = keep[start:start + value.size].reshape(value.shape)
            start += value.size
        return masks

    def _mask_weights(self):
        for key, v in zip(self.keys, self.kernels):
            v.assign(v.numpy() * self.masks[key].astype(v.dtype))

    def on_train_begin(self, logs=None):
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError("GradualMagnitudePruning counts batches: compile with steps_per_execution=1")

    def on_train_batch_begin(self, batch, logs=None):
        self.step += 1
        changes = self.due(self.step) or self._constraints_hold != ("ones" if self.due(self.step + 1) else "mask")
        if changes:
            # On JAX the trainer keeps the weights outside the variables during an epoch: reading
            # self.model writes them back, and the trainer reads them again after this callback.
            model = self.model
        if self.due(self.step):
            sparsity = polynomial_sparsity(self.step, self.initial_sparsity, self.final_sparsity,
                                           self.begin_step, self.end_step, self.power)
            self.masks = self._ranked_masks(sparsity)
            self._mask_weights()
            self._constraints_hold = None
            self.sparsity_log.append((self.step, sparsity))
        # the next step ranks the weights this step's optimizer update leaves: keep them raw
        want = "ones" if self.due(self.step + 1) else "mask"
        if self._constraints_hold != want:
            for path, constraint in self._constraints.items():
                constraint.set_mask(self.masks[path] | (want == "ones"))
            self._constraints_hold = want
            if step_holds_masks_as_constants():
                model.make_train_function(force=True)  # a jitted JAX step held the old masks

    def on_epoch_end(self, epoch, logs=None):
        self.model  # noqa: B018 (on JAX: the weights back into the variables first)
        self._mask_weights()


def one_shot(model, make_masks, amount):
    """Prune once, now: ``apply_masks(model, make_masks(model, amount))``; returns the masks."""
    masks = make_masks(model, amount)
    apply_masks(model, masks)
    return masks


def iterative_pruning(model, make_masks, targets, retrain):
    """Prune-and-retrain cycles: for each target in ``targets`` (increasing), compute masks with
    ``make_masks(model, target)``, attach them, then call ``retrain(model, target)``.

    Masks are recomputed from the retrained weights each cycle; earlier zeros stay zero
    because they have the smallest magnitude. Returns ``[(target, masks)]``.
    """
    targets = List(Fraction())("targets", targets)
    if any(b < a for a, b in zip(targets, targets[1:])):
        raise ValueError(f"targets must be non-decreasing, got {targets}")
    record = []
    for target in targets:
        masks = make_masks(model, target)
        attach_masks(model, masks)
        retrain(model, target)
        record.append((target, masks))
    return record

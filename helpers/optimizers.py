"""Multi-gradient optimizers of the paper (SMGD, MAdam, MRMSprop) as Keras 3 optimizers.

They work with plain ``model.fit``: the model's compiled loss is the first objective
(cross-entropy plus the conv-L2 regularization losses), and its gradient g1 is what Keras
hands to the optimizer. The second objective (``SparsityObjective``: L1 of the dense kernels,
plus conv L2 in the faithful variant) has a closed-form gradient g2 that the optimizer
computes itself from the variables, so no second backward pass is needed.

Every batch (REPRODUCTION_NOTES.md §2):
  1. g2 = sign(W) on dense kernels, 2 lambda_c K on conv kernels, 0 elsewhere;
  2. (c1, c2) = closed-form min-norm weights of {g1, g2} over *all* trainable variables
     (``weights="min-norm"``), or the fixed weighted-sum weights (``weights=(l1, l2)``);
  3. the update of SMGD / MAdam / MRMSprop with those weights.

The adaptive methods (MAdam, MRMSprop) combine the two objectives in one of two ways
(``scalarization``):

* ``"separate"`` (the published code, REPRODUCTION_NOTES.md §2.3/2.4): one moment stream per objective, each
  direction normalised on its own, then ``c1 d1 + c2 d2``. Its fixed point per coordinate is
  ``c1 m1/sqrt(v1) + c2 m2/sqrt(v2) ~ 0``, *not* the stationarity condition of the weighted sum
  ``c1 loss1 + c2 loss2``: under fixed weights it does not minimise that scalarization.
* ``"joint"``: one moment stream on the combined gradient ``c1 g1 + c2 g2``. With fixed weights
  this is exactly Keras Adam (Keras-2 RMSprop) on ``lambda1 loss1 + lambda2 loss2``.

SMGD is linear in the gradient, so both scalarizations are the same update; SMGD accepts the
argument and ignores it.
Intra-training pruning is not the optimizer's job: it is a Keras variable constraint
(``helpers.pruning.PruningConstraint``), which Keras applies in-graph right after every update.

c1 and c2 are optimizer variables: ``optimizer.c1`` / ``optimizer.c2`` hold the last batch's
values, and ``optimizer.c_sums`` / ``optimizer.c_count`` accumulate them for epoch means
(``helpers.callbacks.MultiGradientWeightsLogger`` reads and resets them).

Written with ``keras.ops`` only, so they also run on the JAX backend.
"""

from __future__ import annotations

import keras
from keras import ops

from .objectives import NONE, SparsityObjective

MIN_NORM = "min-norm"
SEPARATE, JOINT = "separate", "joint"
SCALARIZATIONS = (SEPARATE, JOINT)


def min_norm_coefficients(g1, g2):
    """Closed-form min-norm convex combination of two gradients (REPRODUCTION_NOTES.md §2.1).

    ``g1`` and ``g2`` are lists of tensors (one per variable); an entry of ``g2`` may be None,
    meaning zeros. Returns ``(c1, c2)`` scalar tensors with c1 + c2 = 1 minimising
    ``||c1 g1 + c2 g2||^2`` over c1 in [0, 1]:

        (1, 0)                                   if g1 == g2
        c1 = <g2 - g1, g2> / ||g2 - g1||^2,  c2 = <g1 - g2, g1> / ||g2 - g1||^2
        (0, 1) if c1 < 0;  (1, 0) if c2 < 0
    """
    diff_sq = ops.convert_to_tensor(0.0)     # ||g2 - g1||^2
    diff_dot_g2 = ops.convert_to_tensor(0.0)  # <g2 - g1, g2>  (numerator of c1)
    diff_dot_g1 = ops.convert_to_tensor(0.0)  # <g1 - g2, g1>  (numerator of c2)
    for a, b in zip(g1, g2):
        a = ops.cast(a, "float32")
        if b is None:  # g2 = 0 here
            square = ops.sum(ops.square(a))
            diff_sq = diff_sq + square
            diff_dot_g1 = diff_dot_g1 + square
            continue
        b = ops.cast(b, "float32")
        d = b - a
        diff_sq = diff_sq + ops.sum(ops.square(d))
        diff_dot_g2 = diff_dot_g2 + ops.sum(d * b)
        diff_dot_g1 = diff_dot_g1 - ops.sum(d * a)
    # Both numerators are summed directly, as the original does: c2 is typically 1e-5, and
    # 1 - c1 in float32 would lose about two of its digits. ||g2 - g1||^2 is summed from
    # the differences, so it is exactly 0 iff g1 == g2.
    positive = diff_sq > 0
    safe = ops.where(positive, diff_sq, ops.ones_like(diff_sq))
    c1, c2 = diff_dot_g2 / safe, diff_dot_g1 / safe
    one, zero = ops.ones_like(c1), ops.zeros_like(c1)
    # REPRODUCTION_NOTES.md §2.1: g1 == g2 -> (1, 0); c1 < 0 -> (0, 1); c2 < 0 -> (1, 0)
    c1, c2 = ops.where(c1 < 0, zero, c1), ops.where(c1 < 0, one, c2)
    c1, c2 = ops.where(c2 < 0, one, c1), ops.where(c2 < 0, zero, c2)
    return ops.where(positive, c1, one), ops.where(positive, c2, zero)


class MultiGradientOptimizer(keras.optimizers.Optimizer):
    """Base class: computes (c1, c2) once per batch, then lets ``update_step`` combine.

    Args:
        learning_rate: float or ``LearningRateSchedule`` (e.g. ``helpers.learning_rate.PaperSchedule``).
        penalty: the second objective, ``SparsityObjective.from_model(model)``.
        weights: ``"min-norm"`` (the multi-objective algorithm, c recomputed every batch) or a
            pair ``(lambda1, lambda2)`` of fixed non-negative weights (weighted-sum mode).
        scalarization: ``"separate"`` (one moment stream per objective, the published code) or
            ``"joint"`` (one stream on ``c1 g1 + c2 g2``); see the module docstring.
    """

    def __init__(self, learning_rate, penalty, weights=MIN_NORM, scalarization=SEPARATE, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if scalarization not in SCALARIZATIONS:
            raise ValueError(f"scalarization must be one of {', '.join(SCALARIZATIONS)}, got {scalarization!r}")
        self.scalarization = scalarization
        if isinstance(penalty, dict):
            penalty = SparsityObjective.from_config(penalty)
        if not isinstance(penalty, SparsityObjective):
            raise TypeError("penalty must be a helpers.objectives.SparsityObjective, e.g. "
                            "SparsityObjective.from_model(model)")
        self.penalty = penalty
        if isinstance(weights, str):
            if weights != MIN_NORM:
                raise ValueError(f"weights must be 'min-norm' or a pair (lambda1, lambda2), got {weights!r}")
            self.fixed_weights = None
        else:
            try:
                lam1, lam2 = (float(w) for w in weights)
            except (TypeError, ValueError):
                raise ValueError(f"weights must be 'min-norm' or a pair (lambda1, lambda2), got {weights!r}")
            if lam1 < 0 or lam2 < 0 or lam1 + lam2 == 0:
                raise ValueError(f"fixed weights must be >= 0 and not both 0, got {weights!r}")
            self.fixed_weights = (lam1, lam2)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.penalty.check_covers(var_list)
        # Roles are static per variable, so update_step branches in Python, not in-graph.
        self._roles = [self.penalty.role(v) for v in var_list]
        start = self.fixed_weights or (1.0, 0.0)
        self.c1 = self.add_variable((), initializer=keras.initializers.Constant(start[0]), name="c1")
        self.c2 = self.add_variable((), initializer=keras.initializers.Constant(start[1]), name="c2")
        self.c_sums = self.add_variable((2,), initializer="zeros", name="c_sums")
        self.c_count = self.add_variable((), initializer="zeros", name="c_count")
        self._build_slots(var_list)

    def _build_slots(self, var_list):
        raise NotImplementedError

    def _penalty_gradient(self, variable):
        role, coefficient = self._roles[self._get_variable_index(variable)]
        return SparsityObjective.gradient(role, coefficient, variable)

    def _has_penalty(self, variable):
        return self._roles[self._get_variable_index(variable)][0] != NONE

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.fixed_weights is None:
            g2 = [self._penalty_gradient(v) for v in trainable_variables]
            c1, c2 = min_norm_coefficients(grads, g2)
            self.c1.assign(c1)
            self.c2.assign(c2)
        self.c_sums.assign_add(ops.stack([ops.cast(self.c1, "float32"), ops.cast(self.c2, "float32")]))
        self.c_count.assign_add(1.0)
        # The backend's own loop (TF distribution-aware) then calls update_step per variable;
        # each variable is read before its own update, so g2 there equals the g2 used for c.
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"penalty": self.penalty.get_config(),
                       "weights": MIN_NORM if self.fixed_weights is None else list(self.fixed_weights),
                       "scalarization": self.scalarization})
        return config

    def _combined_gradient(self, gradient, variable):
        """``c1 g1 + c2 g2`` for one variable (g2 read before the variable's own update)."""
        dtype = variable.dtype
        combined = ops.multiply(ops.cast(gradient, dtype), ops.cast(self.c1, dtype))
        g2 = self._penalty_gradient(variable)
        if g2 is not None:
            combined = ops.add(combined, ops.multiply(g2, ops.cast(self.c2, dtype)))
        return combined


@keras.saving.register_keras_serializable(package="helpers")
class SMGD(MultiGradientOptimizer):
    """Stochastic multi-gradient descent with momentum (REPRODUCTION_NOTES.md §2.2).

        v <- mu v - lr (c1 g1 + c2 g2);   theta <- theta + v

    With momentum 0 it is Liu & Vicente's SMG; with ``weights=(1, 0)`` it is Keras SGD.
    The original class's surprising default ``decay=0.01`` (B13) is not copied: pass the
    decay through the learning-rate schedule explicitly.

    SMGD is linear in the gradient, so ``scalarization`` ("separate" or "joint") does not change
    the update: both give ``c1 g1 + c2 g2``.
    """

    def __init__(self, learning_rate=0.01, penalty=None, weights=MIN_NORM, momentum=0.0,
                 nesterov=False, scalarization=SEPARATE, name="smgd", **kwargs):
        super().__init__(learning_rate, penalty, weights, scalarization, name=name, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov

    def _build_slots(self, var_list):
        self.momentums = [self.add_variable_from_reference(v, "momentum") if self.momentum else None
                          for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        direction = self._combined_gradient(gradient, variable)
        m = self.momentums[self._get_variable_index(variable)]
        if m is None:
            self.assign_sub(variable, ops.multiply(direction, lr))
            return
        mu = ops.cast(self.momentum, variable.dtype)
        self.assign(m, ops.subtract(ops.multiply(m, mu), ops.multiply(direction, lr)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, mu), ops.multiply(direction, lr)))
        else:
            self.assign_add(variable, m)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


@keras.saving.register_keras_serializable(package="helpers")
class MAdam(MultiGradientOptimizer):
    """Multi-objective Adam (REPRODUCTION_NOTES.md §2.3).

    ``scalarization="separate"`` (the published code): one Adam moment stream per objective,

        m_i <- b1 m_i + (1-b1) g_i;  v_i <- b2 v_i + (1-b2) g_i^2
        theta <- theta - lr_t [c1 m_1/(sqrt v_1 + eps) + c2 m_2/(sqrt v_2 + eps)]

    c1, c2 come from the raw gradients, not from the Adam directions. This is *not* Adam on
    c1 loss1 + c2 loss2: each direction is normalised separately, so the L1 direction is
    about sign(W) per coordinate (a soft threshold of about lr_t c2 per step).

    ``scalarization="joint"``: one stream on d = c1 g1 + c2 g2,

        m <- b1 m + (1-b1) d;  v <- b2 v + (1-b2) d^2;  theta <- theta - lr_t m/(sqrt v + eps)

    which with fixed weights is exactly Keras Adam on lambda1 loss1 + lambda2 loss2.
    """

    def __init__(self, learning_rate=0.001, penalty=None, weights=MIN_NORM, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, scalarization=SEPARATE, name="madam", **kwargs):
        super().__init__(learning_rate, penalty, weights, scalarization, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _build_slots(self, var_list):
        def slots(name, only_penalised=False):
            return [self.add_variable_from_reference(v, name)
                    if not only_penalised or self.penalty.role(v)[0] != NONE else None for v in var_list]
        # Variables outside the penalty have g2 = 0 forever, so m2 = v2 = 0 and their second
        # direction is exactly 0/(0+eps) = 0: no slots are needed for them. The joint
        # scalarization has a single stream (m1, v1) on the combined gradient.
        self.m1, self.v1 = slots("m1"), slots("v1")
        if self.scalarization == SEPARATE:
            self.m2, self.v2 = slots("m2", True), slots("v2", True)
        if self.amsgrad:
            self.vhat1 = slots("vhat1")
            if self.scalarization == SEPARATE:
                self.vhat2 = slots("vhat2", True)

    def _direction(self, g, m, v, vhat):
        self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
        if vhat is not None:
            self.assign(vhat, ops.maximum(vhat, v))
            v = vhat
        return ops.divide(m, ops.add(ops.sqrt(v), self.epsilon))

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        alpha = lr * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, dtype), step)) / (
            1 - ops.power(ops.cast(self.beta_1, dtype), step))
        vhat1 = self.vhat1[i] if self.amsgrad else None
        if self.scalarization == JOINT:
            update = self._direction(self._combined_gradient(gradient, variable), self.m1[i], self.v1[i], vhat1)
            self.assign_sub(variable, ops.multiply(update, alpha))
            return
        g2 = self._penalty_gradient(variable)  # read before the update below
        update = ops.multiply(self._direction(ops.cast(gradient, dtype), self.m1[i], self.v1[i], vhat1),
                              ops.cast(self.c1, dtype))
        if g2 is not None:
            vhat2 = self.vhat2[i] if self.amsgrad else None
            update = ops.add(update, ops.multiply(self._direction(g2, self.m2[i], self.v2[i], vhat2),
                                                  ops.cast(self.c2, dtype)))
        self.assign_sub(variable, ops.multiply(update, alpha))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "amsgrad": self.amsgrad})
        return config


@keras.saving.register_keras_serializable(package="helpers")
class MRMSprop(MultiGradientOptimizer):
    """Multi-objective RMSprop, Keras-2 style (epsilon outside the root), REPRODUCTION_NOTES.md §2.4.

    ``scalarization="separate"`` (the published code):

        a_i <- rho a_i + (1-rho) g_i^2;   theta <- theta - lr [c1 g1/(sqrt a_1 + eps) + c2 g2/(sqrt a_2 + eps)]

    ``scalarization="joint"``: one accumulator on d = c1 g1 + c2 g2,
    ``a <- rho a + (1-rho) d^2;  theta <- theta - lr d/(sqrt a + eps)`` (``RMSpropKeras2`` on the
    weighted sum when the weights are fixed).
    """

    def __init__(self, learning_rate=0.001, penalty=None, weights=MIN_NORM, rho=0.9, epsilon=1e-7,
                 scalarization=SEPARATE, name="mrmsprop", **kwargs):
        super().__init__(learning_rate, penalty, weights, scalarization, name=name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _build_slots(self, var_list):
        self.a1 = [self.add_variable_from_reference(v, "a1") for v in var_list]
        self.a2 = [self.add_variable_from_reference(v, "a2")
                   if self.scalarization == SEPARATE and self.penalty.role(v)[0] != NONE else None
                   for v in var_list]

    def _direction(self, g, a):
        self.assign(a, ops.add(ops.multiply(a, self.rho), ops.multiply(ops.square(g), 1 - self.rho)))
        return ops.divide(g, ops.add(ops.sqrt(a), self.epsilon))

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        dtype = variable.dtype
        if self.scalarization == JOINT:
            update = self._direction(self._combined_gradient(gradient, variable), self.a1[i])
            self.assign_sub(variable, ops.multiply(update, ops.cast(learning_rate, dtype)))
            return
        g2 = self._penalty_gradient(variable)
        update = ops.multiply(self._direction(ops.cast(gradient, dtype), self.a1[i]), ops.cast(self.c1, dtype))
        if g2 is not None:
            update = ops.add(update, ops.multiply(self._direction(g2, self.a2[i]), ops.cast(self.c2, dtype)))
        self.assign_sub(variable, ops.multiply(update, ops.cast(learning_rate, dtype)))

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="helpers")
class RMSpropKeras2(keras.optimizers.Optimizer):
    """Keras 2.3.1's RMSprop: ``theta -= lr g / (sqrt(a) + eps)``.

    Keras 3's RMSprop puts epsilon inside the root (``lr g / sqrt(a + eps)``); the
    difference is tiny but this is the faithful baseline of the paper's CIFAR runs.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, name="rmsprop_keras2", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.accumulators = [self.add_variable_from_reference(v, "accumulator") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        a = self.accumulators[self._get_variable_index(variable)]
        g = ops.cast(gradient, variable.dtype)
        self.assign(a, ops.add(ops.multiply(a, self.rho), ops.multiply(ops.square(g), 1 - self.rho)))
        self.assign_sub(variable, ops.multiply(ops.divide(g, ops.add(ops.sqrt(a), self.epsilon)),
                                               ops.cast(learning_rate, variable.dtype)))

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config

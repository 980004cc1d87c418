"""The second objective of the biobjective problem and its analytic gradient (REPRODUCTION_NOTES.md §1.1).

    loss1(theta; B) = mean CE(B) + sum_conv lambda_c ||K||_F^2      (the model's compiled loss)
    loss2(theta)    = sum_dense ||W||_1  [+ sum_conv lambda_c ||K||_F^2]

The bracketed conv-L2 term is in *both* objectives in the original code (REPRODUCTION_NOTES.md, B11): that
is the faithful default (``conv_l2=True``); ``conv_l2=False`` keeps it in loss1 only.

The gradient of loss2 is known in closed form, so the optimizers never differentiate it:
``sign(W)`` on dense kernels (``sign(0) = 0``, the subgradient autodiff of ``abs`` gives),
``2 lambda_c K`` on conv kernels, zero on everything else (biases, BN).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .models import conv_layers, dense_layers

# Roles a trainable variable can have in the second objective.
L1, L2, NONE = "l1", "l2", "none"


class SparsityObjective:
    """The paper's second objective, loss2: the L1 norm of the dense kernels, plus the conv-L2 term
    the original code adds to it (B11; ``conv_l2=False`` leaves it out). Says which variables
    loss2 touches, and how.

    Args:
        l1_paths: paths (``variable.path``, e.g. ``"denselayer1/kernel"``) of the kernels
            whose L1 norm is the penalty.
        l2_coefficients: ``{path: lambda_c}`` of conv kernels whose ``lambda_c ||K||^2``
            also enters the penalty (faithful B11); empty for the clean variant.
    """

    def __init__(self, l1_paths, l2_coefficients=None):
        self.l1_paths = tuple(l1_paths)
        self.l2_coefficients = dict(l2_coefficients or {})
        if not self.l1_paths:
            raise ValueError("the penalty needs at least one kernel to put an L1 norm on")
        overlap = set(self.l1_paths) & set(self.l2_coefficients)
        if overlap:
            raise ValueError(f"variables cannot be both L1 and L2 penalised: {sorted(overlap)}")
        if any(c < 0 for c in self.l2_coefficients.values()):
            raise ValueError("L2 coefficients must be >= 0")

    @classmethod
    def from_model(cls, model, conv_l2=True):
        """L1 on every Dense kernel (output layer included); conv L2 from the conv layers'
        ``kernel_regularizer`` when ``conv_l2`` (the faithful B11 behaviour)."""
        l1 = [layer.kernel.path for layer in dense_layers(model)]
        l2 = {}
        if conv_l2:
            for layer in conv_layers(model):
                reg = layer.kernel_regularizer
                coefficient = float(getattr(reg, "l2", 0.0) or 0.0) if reg is not None else 0.0
                if coefficient > 0:
                    l2[layer.kernel.path] = coefficient
        return cls(l1, l2)

    def get_config(self):
        return {"l1_paths": list(self.l1_paths), "l2_coefficients": dict(self.l2_coefficients)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def role(self, variable):
        """``(role, coefficient)`` of a trainable variable."""
        path = variable.path
        if path in self.l1_paths:
            return L1, 1.0
        if path in self.l2_coefficients:
            return L2, self.l2_coefficients[path]
        return NONE, 0.0

    def check_covers(self, variables):
        """Raise if a penalised path is missing from the variables (a wrong model)."""
        known = {v.path for v in variables}
        missing = [p for p in (*self.l1_paths, *self.l2_coefficients) if p not in known]
        if missing:
            raise ValueError(
                f"the penalty names variables the model does not have: {missing}; "
                f"build it with SparsityObjective.from_model(model) for the model you train")

    @staticmethod
    def gradient(role, coefficient, value):
        """Analytic gradient of loss2 w.r.t. one variable's value (None means zero)."""
        if role != NONE:
            value = ops.convert_to_tensor(value)  # a Variable on some backends (JAX)
        if role == L1:
            return ops.sign(value)
        if role == L2:
            return ops.multiply(value, 2.0 * coefficient)
        return None

    def value(self, model):
        """loss2 of the model's current weights, as a Python float."""
        by_path = {v.path: np.asarray(v.numpy()) for v in model.trainable_variables}
        total = sum(float(np.abs(by_path[p]).sum()) for p in self.l1_paths)
        total += sum(c * float(np.square(by_path[p]).sum()) for p, c in self.l2_coefficients.items())
        return total


# Deprecated alias: SparsityObjective's old name (the README's published example and users' code use it).
DensePenalty = SparsityObjective


def dense_l1(model, include_bias=False):
    """sum over Dense layers of ||kernel||_1 (and ||bias||_1 when asked), a float.

    This is the y-axis of Fig. 4(a); biases are reported separately (REPRODUCTION_NOTES.md, B8).
    """
    total = 0.0
    for layer in dense_layers(model):
        total += float(np.abs(layer.kernel.numpy()).sum())
        if include_bias and layer.use_bias:
            total += float(np.abs(layer.bias.numpy()).sum())
    return total

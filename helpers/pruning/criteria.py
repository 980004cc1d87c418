"""Which weights to prune: importance x granularity x scope, the shape Torch-Pruning uses.

- **importance**: how a weight or a structure is scored. ``"magnitude"`` (|w| for a weight, the
  L2 norm for a unit/filter), ``"l1"`` (sum of |w| of a unit's incoming kernel; |w| for a
  weight), ``"l2"`` (the L2 norm; |w| for a weight, which ranks like w^2).
- **granularity**: ``"weight"`` (single kernel entries), ``"unit"`` / ``"filter"`` (whole output
  units of a Dense layer / output filters of a Conv2D layer, with their biases: the two names
  are the same structure, the last kernel axis).
- **scope**: ``"layer"`` (every layer loses the same fraction, or the fraction given for it)
  or ``"global"`` (one ranking across all selected layers; for units ``normalize="fan_in"``
  divides each unit's norm by sqrt(fan-in) so that wide and narrow layers compete fairly).

Which layers: every Dense and Conv2D layer, minus ``ignored_layers`` (names or layers, e.g.
``[output_layer(model)]`` for the classifier), or only ``layers`` (names). Exactly
``int(n * amount)`` of the ``n`` candidates are pruned, the smallest scores first (stable order).

``masks_for(model, ...)`` returns a ``{variable path: keep-mask}`` dict for ``masks.attach_masks``;
``keep_masks(kernels, ...)`` does the same ranking on plain arrays (the budget environment
ranks stored kernels with it).
"""

from __future__ import annotations

import numpy as np

from ..layers import prunable_layers
from ..validation import Choice, check_fraction

IMPORTANCES = ("magnitude", "l1", "l2")
GRANULARITIES = ("weight", "unit", "filter")
SCOPES = ("layer", "global")
NORMALIZATIONS = (None, "fan_in")


def smallest_k_mask(values, k, order=None):
    """Keep-mask that drops exactly the ``k`` entries of smallest |value| (stable order);
    ``order`` is that order when already known (``rank``)."""
    flat = np.abs(values).ravel()
    keep = np.ones(flat.size, dtype=bool)
    if k > 0:
        keep[(rank(flat) if order is None else order)[:k]] = False
    return keep.reshape(np.shape(values))


def rank(values):
    """Entry indices by increasing |value|, ties in index order."""
    return np.argsort(np.abs(values).ravel(), kind="stable")


def scores(kernel, importance="magnitude", granularity="weight"):
    """Importance of every weight (kernel shape) or of every output unit/filter (last axis)."""
    if granularity == "weight":
        return np.abs(kernel)
    per_unit = kernel.reshape(-1, kernel.shape[-1])
    if importance == "l1":
        return np.abs(per_unit).sum(axis=0)
    return np.sqrt(np.square(per_unit).sum(axis=0))


def _check(importance, granularity, scope, normalize):
    Choice(*IMPORTANCES)("importance", importance)
    Choice(*GRANULARITIES)("granularity", granularity)
    Choice(*SCOPES)("scope", scope)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if normalize is not None and (scope != "global" or granularity == "weight"):
        raise ValueError("normalize applies to global unit/filter pruning only")


def _amounts(amount, count, scope):
    if np.ndim(amount) == 0:
        return [check_fraction("amount", amount)] * count
    if scope == "global":
        raise ValueError("global pruning takes one amount, not one per layer")
    amounts = np.asarray(amount, dtype=np.float64)
    if amounts.shape != (count,):
        raise ValueError(f"need one fraction per layer ({count}), got shape {amounts.shape}")
    if np.any(amounts < 0) or np.any(amounts > 1):
        raise ValueError(f"amounts must lie in [0, 1], got {amounts}")
    return list(amounts)


def keep_masks(kernels, amount, importance="magnitude", granularity="weight", scope="layer", normalize=None,
               orders=None):
    """Keep-masks for plain arrays: per kernel a mask of its shape (``"weight"``) or of its last
    axis (units/filters). ``amount`` is one fraction, or one per kernel with ``scope="layer"``;
    ``orders`` (per-layer weight pruning only) are the kernels' ``rank`` when precomputed."""
    _check(importance, granularity, scope, normalize)
    amounts = _amounts(amount, len(kernels), scope)
    layer_scores = [scores(kernel, importance, granularity) for kernel in kernels]
    if scope == "layer":
        orders = orders if orders is not None and granularity == "weight" else [None] * len(kernels)
        return [smallest_k_mask(s, int(s.size * a), order) for s, a, order in zip(layer_scores, amounts, orders)]
    if normalize == "fan_in":
        layer_scores = [s / np.sqrt(np.prod(kernel.shape[:-1])) for s, kernel in zip(layer_scores, kernels)]
    flat = np.concatenate([s.ravel() for s in layer_scores])
    keep = smallest_k_mask(flat, int(flat.size * amounts[0]))
    split = np.cumsum([s.size for s in layer_scores])[:-1]
    return [part.reshape(s.shape) for part, s in zip(np.split(keep, split), layer_scores)]


def masks_for(model, amount, importance="magnitude", granularity="weight", scope="layer", ignored_layers=None,
          layers=None, include_bias=False, normalize=None):
    """``{variable path: keep-mask}`` pruning ``amount`` of ``model``'s Dense/Conv2D layers.

    ``include_bias`` (weight granularity, per layer) also drops the ``int(n * amount)`` smallest
    biases, ranked separately (seed 002's quirk); unit/filter masks always drop the biases of the
    units they remove.
    """
    selected = prunable_layers(model, layers, include_output=True, ignored_layers=ignored_layers)
    if include_bias and (granularity != "weight" or scope != "layer"):
        raise ValueError("include_bias applies to per-layer weight pruning (unit masks always include biases)")
    kernels = [layer.kernel.numpy() for layer in selected]
    keeps = keep_masks(kernels, amount, importance, granularity, scope, normalize)
    amounts = _amounts(amount, len(selected), scope)
    result = {}
    for layer, kernel, keep, fraction in zip(selected, kernels, keeps, amounts):
        if granularity == "weight":
            result[layer.kernel.path] = keep
            if include_bias and layer.use_bias:
                bias = layer.bias.numpy()
                result[layer.bias.path] = smallest_k_mask(bias, int(bias.size * fraction))
        else:
            result[layer.kernel.path] = np.broadcast_to(keep, kernel.shape).copy()
            if layer.use_bias:
                result[layer.bias.path] = keep.copy()
    return result

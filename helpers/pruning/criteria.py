"""Which weights to prune: importance x granularity x scope, the shape Torch-Pruning uses.

- **granularity**: ``"weight"`` (single kernel entries of every kernel layer: Dense, Conv1D/2D/3D,
  Conv*Transpose, DepthwiseConv (its depthwise kernel), SeparableConv (both kernels), EinsumDense
  and MultiHeadAttention's projections, Embedding, LSTM/GRU/SimpleRNN kernels); ``"unit"`` /
  ``"filter"`` (the same thing: whole output channels, pruned as the **groups** of the dependency
  graph, ``dependency.DependencyGraph``: a residual stage's channels go together, every member's
  slices are masked, the output layer's channels are never pruned); ``"n:m"`` such as ``"2:4"``
  (keep the ``n`` largest of every ``m`` consecutive weights along a Dense/Conv kernel's input
  axis, as tfmot's ``sparsity_m_by_n``; ``amount`` is ignored); ``"head"`` (whole attention
  heads of every MultiHeadAttention: its query/key/value columns and biases and its rows of the
  output projection, so a pruned head adds exactly zero; ``compact`` rebuilds the layer with
  fewer heads).
- **importance**: a criterion of the registry, by name (``IMPORTANCES``), an ``Importance``
  object, or a callable. ``"magnitude"`` (|w| for a weight, the L2 norm of a channel's weights),
  ``"l1"`` (sum of |w|), ``"l2"`` (L2 norm), ``"taylor"`` (first-order Taylor on a batch
  ``data=(x, y)``: |w * dL/dw| for a weight, the sum of (w * dL/dw)^2 over a channel's weights),
  ``"bn_scale"`` (|gamma| of the channel's BatchNormalization: network slimming). Each is one
  ``Importance`` subclass below, registered once; it says what it scores (single weights,
  channels from their weight slices, channels from BatchNormalization scales, attention heads)
  and whether it needs the loss gradients, and the functions here extract the arrays it scores.
  A new criterion is a subclass registered with ``@register_importance("name")``, in the user's
  own code or here. A callable ``importance(layer, granularity)`` (also registrable by name)
  returns |w|-shaped scores for ``"weight"``, one score per output channel for structured
  granularities (summed over the group's producers) and one per head for ``"head"``.
- **scope**: ``"layer"`` (every layer / group loses the same fraction, or the fraction given for
  it) or ``"global"`` (one ranking across all of them; ``normalize="fan_in"`` divides a channel's
  score by the square root of its producers' fan-in so that wide and narrow layers compete
  fairly). ``max_ratio`` caps the fraction any one group may lose (default: 0.9 under global
  ranking, so global pruning never empties a layer; per layer no cap but one channel is always
  kept; ``max_ratio=1`` allows emptying a group).
  ``round_to`` makes every group keep a multiple of it (hardware likes multiples of 8).

Which weights: all of the above, minus ``ignored_layers`` (names or keys of layers, or layers),
or only ``layers``. For structured granularities a group is pruned when one of its producers is
selected and none is ignored. ``members="all"`` (default, Torch-Pruning's) scores a channel over
every member of its group (producers' output slices, consumers' input slices, depthwise
channels, BN) and masks them all; ``members="producers"`` scores and masks the producers only (a
filter's own kernel and bias: the classic definition that the notebooks of projects 002 and 003 follow).
Exactly ``int(n * amount)`` of the ``n`` candidates are pruned (fewer where caps bind), the
smallest scores first, ties in index order (linear time: a partition, not a sort).

``masks_for(model, ...)`` returns a ``{weight key: keep-mask}`` dict for ``masks.attach_masks``;
``keep_masks(kernels, ...)`` does the weight/unit ranking on plain arrays (the budget
environment ranks stored kernels with it).
"""

from __future__ import annotations

import copy
import numbers

import keras
import numpy as np

from ..layers import kernel_weights, weights as weight_table
from ..validation import Choice, Fraction, List, check_fraction
from .dependency import KERNEL_LAYERS, DependencyGraph
from .errors import PruningError

IMPORTANCES = ()  # the registered criteria's names, in order: rebound by register_importance below
GRANULARITIES = ("weight", "unit", "filter", "head")
SCOPES = ("layer", "global")
NORMALIZATIONS = (None, "fan_in")
MEMBERS = ("all", "producers")
DEFAULT_GLOBAL_MAX_RATIO = 0.9


# ---------------------------------------------------------------- importance criteria: the registry
#
# A criterion is defined once, as an ``Importance`` subclass, and registered by name. The
# pruning functions below never test a criterion's name: they ask it what it reads (``reads``,
# ``needs_gradients``), hand it numpy arrays (whole kernels, per-channel slices, BN scales, head
# slices, already multiplied by dL/dw when it needs gradients) and rank what it returns. So a
# new criterion touches nothing but its own class (Torch-Pruning's ``Importance`` objects, with
# ``keras.optimizers.get``'s name -> object lookup).

READS = ("weights", "channels", "bn", "heads")


class Importance:
    """An importance criterion. Low scores are pruned first; scores are non-negative, ties go in
    index order.

    What it can score, ``reads``, any of:
      ``"weights"``   single entries (granularity ``"weight"`` and N:M);
      ``"channels"``  channels (unit/filter) from their weight slices: producers' output
                      columns, consumers' input rows, depthwise channels, in every member of
                      the group;
      ``"bn"``        channels from the gamma of the group's BatchNormalization layers;
      ``"heads"``     attention heads from their query/key/value/output kernel slices.
    What it needs: with ``needs_gradients = True`` every array it is handed is ``w * dL/dw`` on
    the batch ``data=(x, y)`` instead of ``w``.

    How it scores (numpy in, numpy out), for what it reads:
      ``weight(values)``           one score per entry, ``values``' shape;
      ``statistic(values, axis)``  one number per channel (or head) from its entries along ``axis``;
      ``merge``                    the ufunc combining statistics: of the pieces of one slice (a
                                   separable kernel's rows of one channel, a head's four
                                   projections) and of the members of a group (``np.add``,
                                   ``np.maximum``);
      ``member(statistic)``        what one layer's slice adds to its channel's total (default: itself);
      ``finish(total)``            the score from the total (default: itself); one plain kernel
                                   (``keep_masks``) scores ``finish(statistic)``;
      ``bn(gamma)``                one number per channel from a BatchNormalization's scale,
                                   merged into the total like a member.
    """

    name = None  # the registry's name; set by register_importance
    reads = ()
    needs_gradients = False
    merge = np.add

    def weight(self, values):
        raise NotImplementedError(f"{self.label} does not score single weights")

    def statistic(self, values, axis):
        raise NotImplementedError(f"{self.label} does not score weight slices")

    def member(self, statistic):
        return statistic

    def finish(self, total):
        return total

    def bn(self, gamma):
        raise NotImplementedError(f"{self.label} does not score BatchNormalization scales")

    @property
    def label(self):
        return self.name or type(self).__name__

    def __repr__(self):
        return f"<importance {self.label!r}>"


class LayerImportance(Importance):
    """A callable ``importance(layer, granularity)`` as a criterion: it is handed whole layers,
    not arrays, and returns kernel-shaped scores (``"weight"``), one score per output channel of
    a producing layer (``"filter"``, summed over the group's producers) or one per head
    (``"head"``). The functions here check the shapes it returns."""

    reads = ("weights", "channels", "heads")

    def __init__(self, function):
        self.function = function

    def layer_scores(self, layer, granularity):
        return np.asarray(self.function(layer, granularity), dtype=np.float64)

    @property
    def label(self):
        return self.name or getattr(self.function, "__name__", repr(self.function))


class L1Norm(Importance):
    """``"l1"``: |w| for a weight; the sum of |w| over a channel's slices (or a head's)."""

    reads = ("weights", "channels", "heads")

    def weight(self, values):
        return np.abs(values)

    def statistic(self, values, axis):
        return np.abs(values).sum(axis=axis)


class L2Norm(Importance):
    """``"magnitude"`` and ``"l2"``: |w| for a weight; a channel's L2 norm: the norm of its
    members' norms (each layer's slice), a head's norm over its four projections."""

    reads = ("weights", "channels", "heads")

    def weight(self, values):
        return np.abs(values)

    def statistic(self, values, axis):
        return np.square(values).sum(axis=axis)  # the squared norm: what the pieces of a slice add up

    def member(self, statistic):
        # the member's norm, squared: the round trip through sqrt is how these scores have always
        # been computed, kept so that they (and the cached results ranked by them) stay bit-identical
        return np.square(np.sqrt(statistic))

    def finish(self, total):
        return np.sqrt(total)


class Taylor(L2Norm):
    """``"taylor"``, first-order Taylor (Molchanov et al. 2019) on a batch ``data=(x, y)``:
    |w * dL/dw| for a weight; for a channel the sum of (w * dL/dw)^2 over its slices (the
    squared norm, no root, as the package has always computed it: the norm's ranking, unless
    ``normalize="fan_in"`` divides it). It does not rank attention heads (it never has)."""

    reads = ("weights", "channels")
    needs_gradients = True

    def finish(self, total):
        return total


class BNScale(Importance):
    """``"bn_scale"``, network slimming (Liu et al. 2017): a channel's |gamma|, summed over the
    BatchNormalization layers of its group; a group without one is an error."""

    reads = ("bn",)

    def bn(self, gamma):
        return np.abs(gamma)


_REGISTRY = {}


def register_importance(name, criterion=None, *, replace=False):
    """Register ``criterion`` under ``name``: an ``Importance`` subclass (registered as an
    instance made with no arguments), an ``Importance`` object, or a callable
    ``importance(layer, granularity)``. Without ``criterion`` it is a decorator (it returns
    what it decorates, unchanged):

        @register_importance("l_inf")
        class LInf(Importance):
            reads = ("weights", "channels")
            merge = np.maximum
            def weight(self, values): return np.abs(values)
            def statistic(self, values, axis): return np.abs(values).max(axis=axis)

    A name is registered once (``ValueError`` otherwise); ``replace=True`` overwrites it (a
    re-run notebook cell). ``IMPORTANCES`` is then the tuple of registered names."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"an importance is registered under a non-empty string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"importance {name!r} is already registered ({_REGISTRY[name]!r}); choose another "
                         "name, or pass replace=True")

    def register(obj):
        if isinstance(obj, type) and issubclass(obj, Importance):
            made = obj()
        elif isinstance(obj, Importance):
            made = copy.copy(obj) if obj.name not in (None, name) else obj  # one object, one name
        elif callable(obj):
            made = LayerImportance(obj)
        else:
            raise TypeError(f"register_importance({name!r}) needs an importance criterion (an Importance "
                            f"subclass or object, or a callable importance(layer, granularity)), got {obj!r}")
        unknown = set(made.reads) - set(READS)
        if unknown:
            raise ValueError(f"importance {name!r} reads {sorted(unknown)}: not among {READS}")
        made.name = name
        _REGISTRY[name] = made
        _names_changed()
        return obj

    return register if criterion is None else register(criterion)


def unregister_importance(name):
    """Remove ``name`` from the registry (a test's own criteria, once it is done)."""
    if name not in _REGISTRY:
        raise ValueError(f"importance {name!r} is not registered; registered: {', '.join(_REGISTRY)}")
    del _REGISTRY[name]
    _names_changed()


def _names_changed():
    # a tuple, rebound at each registration: ``criteria.IMPORTANCES`` is always current (a name
    # imported with ``from criteria import IMPORTANCES`` is the tuple of that moment)
    global IMPORTANCES
    IMPORTANCES = tuple(_REGISTRY)


def get_importance(importance):
    """The criterion ``importance`` names: a registered name, an ``Importance`` (subclass or
    object), or a callable ``importance(layer, granularity)``."""
    if isinstance(importance, Importance):
        return importance
    if isinstance(importance, type) and issubclass(importance, Importance):
        return importance()
    if isinstance(importance, str):
        if importance not in _REGISTRY:
            raise ValueError(f"unknown importance {importance!r}: importance must be one of "
                             f"{', '.join(repr(n) for n in _REGISTRY)} (criteria.IMPORTANCES), an Importance, "
                             "or a callable importance(layer, granularity); register_importance adds a name")
        return _REGISTRY[importance]
    if callable(importance):
        return LayerImportance(importance)
    return Choice(*_REGISTRY)("importance", importance)  # neither a name nor a callable: the type error


register_importance("magnitude", L2Norm())
register_importance("l1", L1Norm())
register_importance("l2", L2Norm())
register_importance("taylor", Taylor())
register_importance("bn_scale", BNScale())


def smallest_k_mask(values, k, order=None):
    """Keep-mask that drops exactly the ``k`` entries of smallest |value|, ties in index order
    (what a stable sort gives, found with a partition); ``order`` is ``rank(values)`` when known."""
    flat = np.abs(np.asarray(values)).ravel()
    keep = np.ones(flat.size, dtype=bool)
    if k >= flat.size:
        keep[:] = False
    elif k > 0:
        if order is not None:
            keep[order[:k]] = False
        else:
            threshold = np.partition(flat, k - 1)[k - 1]
            below = flat < threshold
            ties = np.flatnonzero(flat == threshold)[:k - int(below.sum())]
            keep[below] = False
            keep[ties] = False
    return keep.reshape(np.shape(values))


def rank(values):
    """Entry indices by increasing |value|, ties in index order."""
    return np.argsort(np.abs(values).ravel(), kind="stable")


def scores(kernel, importance="magnitude", granularity="weight"):
    """Importance of every weight (kernel shape) or of every output unit/filter (last axis)."""
    return _array_scores(kernel, _plain_array_criterion(importance, granularity), granularity)


def _array_scores(kernel, criterion, granularity):
    if granularity == "weight":
        return criterion.weight(kernel)
    per_unit = kernel.reshape(-1, kernel.shape[-1])
    return criterion.finish(criterion.statistic(per_unit, 0))


def _check(importance, granularity, scope, normalize, plain_arrays=False):
    """The criterion of ``importance`` after checking the arguments and that it scores what
    ``granularity`` ranks (the package's error, naming it, otherwise); ``plain_arrays``: for
    ``keep_masks``."""
    criterion = get_importance(importance)
    if not _is_n_m(granularity):
        Choice(*GRANULARITIES)("granularity", granularity)
    Choice(*SCOPES)("scope", scope)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if normalize is not None and (scope != "global" or granularity == "weight"):
        raise ValueError("normalize applies to global unit/filter pruning only")
    return _plain_array_criterion(criterion, granularity) if plain_arrays else _scoring(criterion, granularity)


def _scoring(criterion, granularity):
    """``criterion`` if it scores what ``granularity`` ranks, else the error saying what it scores."""
    reads, name = set(criterion.reads), criterion.label
    if granularity == "head":
        if "heads" not in reads:
            able = [n for n, c in _REGISTRY.items() if "heads" in c.reads and not isinstance(c, LayerImportance)]
            raise PruningError(f"importance {name!r} does not rank attention heads; use {', '.join(able)} or a "
                               "callable(layer, 'head')")
    elif granularity in ("unit", "filter"):
        if not reads & {"channels", "bn"}:
            instead = "granularity='weight'" if "weights" in reads else "granularity='head'"
            raise PruningError(f"importance {name!r} does not score channels (it reads {sorted(reads)}): use {instead}")
    elif "weights" not in reads:  # "weight" and N:M rank single entries
        if reads & {"channels", "bn"}:
            raise PruningError(f"importance={name!r} scores channels: use granularity='filter' or 'unit'")
        raise PruningError(f"importance={name!r} does not score single weights: use granularity='head'")
    return criterion


def _plain_array_criterion(importance, granularity):
    """The criterion of ``importance`` for ``keep_masks``' plain arrays, which have no layer, no
    loss gradients and no BatchNormalization: the criteria that need one of them say so."""
    criterion = get_importance(importance)
    name = criterion.label
    if isinstance(criterion, LayerImportance):
        raise PruningError(f"importance {name!r} is a callable(layer, granularity): keep_masks ranks plain arrays, "
                           "with no layer to hand it; pass its scores as the arrays")
    if criterion.needs_gradients:
        raise PruningError(f"importance {name!r} needs the loss gradients of a model, which plain arrays do not "
                           f"have: rank kernel_scores(model, layers, {name!r}, data=(x, y)) instead")
    needed = "weights" if granularity == "weight" else "channels"
    if needed not in criterion.reads:
        what = "BatchNormalization scales" if "bn" in criterion.reads else f"{sorted(criterion.reads)}"
        raise PruningError(f"importance {name!r} scores {what}, not the {needed} of plain kernels")
    return criterion


def _is_n_m(granularity):
    if not isinstance(granularity, str) or ":" not in granularity:
        return False
    n, _, m = granularity.partition(":")
    if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
        raise ValueError(f"granularity {granularity!r}: N:M needs integers 0 < N < M, e.g. '2:4'")
    return True


def _amounts(amount, count, scope):
    """One fraction per layer/group: the scalar, or the list checked entry by entry like it."""
    if not isinstance(amount, (list, tuple, np.ndarray)):
        return [check_fraction("amount", amount)] * count
    if scope == "global":
        raise ValueError("global pruning takes one amount, not one per layer")
    amounts = List(Fraction())("amount", list(np.asarray(amount, dtype=object).tolist())
                               if isinstance(amount, np.ndarray) else list(amount))
    if len(amounts) != count:
        raise ValueError(f"need one fraction per layer ({count}), got {len(amounts)}")
    return amounts


def keep_masks(kernels, amount, importance="magnitude", granularity="weight", scope="layer", normalize=None,
               orders=None):
    """Keep-masks for plain arrays: per kernel a mask of its shape (``"weight"``) or of its last
    axis (units/filters). ``amount`` is one fraction, or one per kernel with ``scope="layer"``;
    ``orders`` (per-layer weight pruning only) are the kernels' ``rank`` when precomputed."""
    criterion = _check(importance, granularity, scope, normalize, plain_arrays=True)
    amounts = _amounts(amount, len(kernels), scope)
    layer_scores = [_array_scores(kernel, criterion, granularity) for kernel in kernels]
    if scope == "layer":
        orders = orders if orders is not None and granularity == "weight" else [None] * len(kernels)
        return [smallest_k_mask(s, int(s.size * a), order) for s, a, order in zip(layer_scores, amounts, orders)]
    if normalize == "fan_in":
        layer_scores = [s / np.sqrt(np.prod(kernel.shape[:-1])) for s, kernel in zip(layer_scores, kernels)]
    flat = np.concatenate([s.ravel() for s in layer_scores])
    keep = smallest_k_mask(flat, int(flat.size * amounts[0]))
    split = np.cumsum([s.size for s in layer_scores])[:-1]
    return [part.reshape(s.shape) for part, s in zip(np.split(keep, split), layer_scores)]


# ---------------------------------------------------------------- selection of layers


def _layer_matcher(model, names, what):
    """The set of layer keys matching ``names`` (layer keys, plain layer names, or layers)."""
    if names is None:
        return None
    refs = weight_table(model).values()
    keys = {ref.layer_key for ref in refs}
    by_name = {}
    for key in keys:
        by_name.setdefault(key.split("/")[-1], set()).add(key)
    matched = set()
    for item in names:
        name = getattr(item, "name", item)
        if not isinstance(name, str):
            raise TypeError(f"{what} must hold layer names or layers, got {item!r}")
        if name in keys:
            matched.add(name)
        elif name in by_name:
            matched |= by_name[name]
        else:
            raise ValueError(f"no prunable layer (a layer with weights) named {name!r} ({what}); have {sorted(by_name)}")
    return matched


def _selected(layer_key, only, ignored):
    if ignored and layer_key in ignored:
        return False
    return only is None or layer_key in only


# ---------------------------------------------------------------- importance


def _data_gradients(model, data, refs, criterion):
    """``{weight key: dL/dw}`` of the model's compiled loss (else sparse cross-entropy) on
    ``data``, for a criterion that ``needs_gradients``."""
    if data is None:
        raise PruningError(f"importance={criterion.label!r} needs a batch: pass data=(x, y)")
    x, y = data
    loss_fn = getattr(model, "loss", None) or "sparse_categorical_crossentropy"
    loss_fn = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
    variables = [ref.variable for ref in refs]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.mean(loss_fn(y, model(x, training=False)))
        grads = tape.gradient(loss, variables)
    elif backend == "jax":
        import jax

        trainable = model.trainable_variables
        index = {id(v): i for i, v in enumerate(trainable)}

        def f(values):
            out, _ = model.stateless_call(values, [v.value for v in model.non_trainable_variables], x, training=False)
            return keras.ops.mean(loss_fn(y, out))

        all_grads = jax.grad(f)([v.value for v in trainable])
        grads = [all_grads[index[id(v)]] if id(v) in index else None for v in variables]
    else:
        raise PruningError(f"importance={criterion.label!r} (loss gradients) supports the tensorflow and jax "
                           f"backends, not {backend}")
    return {ref.key: (np.zeros(ref.variable.shape) if g is None else np.asarray(keras.ops.convert_to_numpy(g)))
            for ref, g in zip(refs, grads)}


def _gradients_if_needed(model, data, refs, criterion):
    return _data_gradients(model, data, refs, criterion) if criterion.needs_gradients else None


def _weight_scores(refs, criterion, data_gradients):
    if isinstance(criterion, LayerImportance):
        out = []
        for ref in refs:
            s = criterion.layer_scores(ref.layer, "weight")
            if s.shape != tuple(ref.variable.shape):
                raise PruningError(f"{ref.layer_key}: importance returned shape {s.shape} for weight "
                                   f"granularity, the kernel has {tuple(ref.variable.shape)}")
            out.append(s)
        return out
    values = [np.asarray(ref.variable.numpy()) for ref in refs]
    if criterion.needs_gradients:
        values = [v * data_gradients[ref.key] for v, ref in zip(values, refs)]
    return [criterion.weight(v) for v in values]


def kernel_scores(model, layers, importance="magnitude", data=None):
    """Per layer of ``layers`` (layer objects), the importance of every entry of its kernel
    (kernel-shaped arrays): ``|w|`` for magnitude, l1 and l2, ``|w * dL/dw|`` for taylor on
    ``data=(x, y)``, or ``importance(layer, "weight")`` for a callable. What per-weight pruning
    ranks (the budget environment ranks these once, for every episode)."""
    criterion = _check(importance, "weight", "layer", None)
    by_layer = {id(ref.layer): ref for ref in kernel_weights(model) if ref.attribute == "kernel"}
    missing = [getattr(layer, "name", layer) for layer in layers if id(layer) not in by_layer]
    if missing:
        raise PruningError(f"layers without a kernel to score: {missing}")
    refs = [by_layer[id(layer)] for layer in layers]
    _check_finite(refs)
    return _weight_scores(refs, criterion, _gradients_if_needed(model, data, refs, criterion))


# ---------------------------------------------------------------- unstructured


def _check_finite(refs):
    for ref in refs:
        value = np.asarray(ref.variable.numpy())
        if not np.all(np.isfinite(value)):
            raise PruningError(f"{ref.key} has non-finite values: a diverged network is not pruned")


def _weight_masks(model, amount, criterion, scope, only, ignored, include_bias, data):
    refs = [ref for ref in kernel_weights(model) if _selected(ref.layer_key, only, ignored)]
    _check_finite(refs)
    amounts = _amounts(amount, len(refs), scope)
    layer_scores = _weight_scores(refs, criterion, _gradients_if_needed(model, data, refs, criterion))
    result = {}
    if scope == "layer":
        for ref, s, fraction in zip(refs, layer_scores, amounts):
            result[ref.key] = smallest_k_mask(s, int(s.size * fraction))
    else:
        flat = np.concatenate([s.ravel() for s in layer_scores]) if layer_scores else np.zeros(0)
        keep = smallest_k_mask(flat, int(flat.size * amounts[0]))
        start = 0
        for ref, s in zip(refs, layer_scores):
            result[ref.key] = keep[start:start + s.size].reshape(s.shape)
            start += s.size
    if include_bias:  # each bias right after its kernel, ranked on its own
        table, with_bias = weight_table(model), {}
        for ref, fraction in zip(refs, amounts):
            with_bias[ref.key] = result[ref.key]
            bias = table.get(f"{ref.layer_key}/bias")
            if bias is not None and ref.attribute == "kernel":
                value = bias.variable.numpy()
                with_bias[bias.key] = smallest_k_mask(value, int(value.size * fraction))
        result = with_bias
    return result


def _n_m_masks(model, granularity, criterion, only, ignored, data):
    n, m = (int(v) for v in granularity.split(":"))
    refs = [ref for ref in kernel_weights(model) if _selected(ref.layer_key, only, ignored)
            and isinstance(ref.layer, KERNEL_LAYERS) and ref.attribute == "kernel"]
    _check_finite(refs)
    result = {}
    for ref, s in zip(refs, _weight_scores(refs, criterion, _gradients_if_needed(model, data, refs, criterion))):
        moved = np.moveaxis(s, -2, -1)  # input axis last
        if moved.shape[-1] % m:
            raise PruningError(f"{ref.layer_key}: {moved.shape[-1]} input channels are not a multiple of {m} ({granularity})")
        blocks = moved.reshape(-1, m)
        order = np.argsort(-blocks, axis=1, kind="stable")  # largest first, ties in index order
        keep = np.zeros(blocks.shape, bool)
        np.put_along_axis(keep, order[:, :n], True, axis=1)
        result[ref.key] = np.moveaxis(keep.reshape(moved.shape), -1, -2)
    return result


# ---------------------------------------------------------------- structured (groups)


def _group_scores(graph, group, criterion, members, refs_by_layer, gradients, normalize):
    """One score per channel of ``group``: every member's contribution, merged by the criterion."""
    scores = np.zeros(group.size)  # the merge's start: 0 for sums, and for maxima of scores >= 0
    position = {int(label): i for i, label in enumerate(group.channels)}
    fan_in = 0
    found_bn = False
    layer_level = isinstance(criterion, LayerImportance)

    def add(space, contribution):
        index = _channel_index(graph, space, position)
        criterion.merge.at(scores, index[index >= 0], contribution[index >= 0])

    def value_of(ref, dtype=None):  # what the criterion scores: w, or w * dL/dw
        value = np.asarray(ref.variable.numpy(), dtype=dtype)
        return value * gradients[ref.key] if criterion.needs_gradients else value

    for call in graph.calls:
        if call.role in ("blocked", "channelwise", "flatten", "merge", "concat"):
            continue
        in_space, out_space = call.inputs[0], call.outputs[0]
        producing = out_space in group.spaces and call.role in ("kernel", "transpose", "separable")
        reading = in_space in group.spaces and call.role in ("kernel", "transpose", "separable")
        channelwise = call.role in ("depthwise", "norm") and out_space in group.spaces and members == "all"
        if not (producing or channelwise or (reading and members == "all")):
            continue
        if producing:
            fan_in += _fan_in(call)
        if layer_level:  # a callable(layer, "filter") scores its producers' output channels (summed)
            if producing:
                add(out_space, criterion.layer_scores(call.layer, "filter"))
            continue
        if call.role == "norm":
            if "bn" in criterion.reads and call.layer.scale:
                found_bn = True
                gamma = refs_by_layer[id(call.layer)]["gamma"]
                add(out_space, criterion.bn(value_of(gamma)))
            continue
        if "channels" not in criterion.reads:
            continue
        for space, side in ((out_space, "out"), (in_space, "in")):
            if space not in group.spaces or (side == "in" and not (reading and members == "all")):
                continue
            if side == "out" and call.role not in ("kernel", "transpose", "separable", "depthwise"):
                continue
            if side == "in" and call.role == "depthwise":
                continue
            for attribute, statistic in _channel_statistics(call, side, criterion).items():
                ref = refs_by_layer.get(id(call.layer), {}).get(attribute)
                if ref is not None:
                    add(space, criterion.member(statistic(value_of(ref, np.float64))))
    if "bn" in criterion.reads and "channels" not in criterion.reads and not found_bn:
        raise PruningError(f"importance={criterion.label!r}: group {group.name} has no BatchNormalization with a scale")
    scores = criterion.finish(scores)
    if normalize == "fan_in" and fan_in:
        scores = scores / np.sqrt(fan_in)
    return scores


def _fan_in(call):
    layer = call.layer
    if call.role == "kernel":
        return int(np.prod(layer.kernel.shape[:-1]))
    if call.role == "transpose":
        shape = layer.kernel.shape
        return int(np.prod(shape[:-2]) * shape[-1])
    return int(np.prod(layer.pointwise_kernel.shape[:-1]))


def _channel_index(graph, space, position):
    """For each channel of ``space``, its position in the group (-1: not in it)."""
    labels = graph.labels[graph.spaces[space].nodes]
    return np.array([position.get(int(label), -1) for label in labels], dtype=np.int64)


def _channel_statistics(call, side, criterion):
    """``{attribute: f(value) -> the criterion's statistic of each channel's slice on that side}``:
    where each channel's entries lie in each kind of kernel (the only layout knowledge a
    criterion relies on)."""
    def along(axis):
        def f(value):
            moved = np.moveaxis(value, axis, -1).reshape(-1, value.shape[axis])
            return criterion.statistic(moved, 0)
        return f

    role = call.role
    if role == "kernel":
        return {"kernel": along(-1 if side == "out" else -2)}
    if role == "transpose":
        return {"kernel": along(-2 if side == "out" else -1)}
    if role == "separable":
        if side == "out":
            return {"pointwise_kernel": along(-1)}
        m = call.layer.depth_multiplier

        def depthwise_in(value):  # (..., in, m): a channel's m slices together
            return criterion.statistic(np.moveaxis(value, -2, -1).reshape(-1, value.shape[-2]), 0)

        def pointwise_in(value):  # rows c*m ... c*m+m-1 belong to input channel c: pieces, merged
            rows = np.moveaxis(value, -2, 0).reshape(value.shape[-2], -1)
            return criterion.merge.reduce(criterion.statistic(rows, 1).reshape(-1, m), axis=1)

        return {"depthwise_kernel": depthwise_in, "pointwise_kernel": pointwise_in}
    if role == "depthwise":
        m = call.layer.depth_multiplier

        def depthwise_out(value):  # (..., in, m) -> output channel c*m + k
            return criterion.statistic(value.reshape(-1, value.shape[-2] * m), 0)

        return {"kernel": depthwise_out}
    return {}


def _prune_counts(sizes, amount, max_ratio, round_to, scope):
    """How many channels each group may lose at most, and (per layer) how many it loses."""
    caps = []
    for n in sizes:
        cap = n - 1 if max_ratio is None or max_ratio < 1 else n
        if max_ratio is not None:
            cap = min(cap, int(np.floor(n * max_ratio + 1e-9)))
        caps.append(max(cap, 0))
    if scope == "global":
        return caps, None
    counts = []
    for n, a, cap in zip(sizes, amount, caps):
        k = min(int(n * a), cap)
        counts.append(_rounded(n, k, round_to))
    return caps, counts


def _rounded(n, k, round_to):
    """Prune fewer so that the kept count is a multiple of ``round_to`` (never more than ``k``)."""
    if not round_to or n - k <= 0:
        return k
    kept = int(np.ceil((n - k) / round_to) * round_to)
    return n - min(kept, n)


def _select(group_scores, amounts, max_ratio, round_to, scope):
    """Per group, the positions of the channels (or heads) to prune: the smallest scores, per
    group or in one global ranking, within each group's cap (``max_ratio``; global: 0.9 unless
    given) and rounded so the kept counts are multiples of ``round_to``."""
    sizes = [len(s) for s in group_scores]
    if max_ratio is None and scope == "global":
        max_ratio = DEFAULT_GLOBAL_MAX_RATIO
    caps, counts = _prune_counts(sizes, amounts, max_ratio, round_to, scope)
    if scope == "layer":
        return [np.flatnonzero(~smallest_k_mask(s, k)) for s, k in zip(group_scores, counts)]
    if not group_scores:
        return []
    flat = np.concatenate(group_scores)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    order = np.argsort(flat, kind="stable")
    # the within-group rank of each candidate in the global order; candidates past their
    # group's cap are skipped, the next ones take their place
    rank_in_group = np.zeros(order.size, np.int64)
    seen = np.zeros(len(sizes), np.int64)
    for position, index in enumerate(order):
        rank_in_group[position] = seen[owner[index]]
        seen[owner[index]] += 1
    allowed = rank_in_group < np.asarray(caps)[owner[order]]
    chosen = order[allowed][:int(flat.size * amounts[0])]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    result = []
    for gi, n in enumerate(sizes):
        mine = chosen[owner[chosen] == gi] - offsets[gi]  # in global order: the smallest first
        result.append(mine[:_rounded(n, len(mine), round_to)] if round_to else mine)
    return result


def attention_heads(model):
    """``[(key, layer, parts)]`` of every built MultiHeadAttention in ``model`` (nested ones
    included): ``parts`` maps query/key/value/output to the ``WeightRef`` of its kernel and bias.
    A head owns a slice of each: axis 1 of the query/key/value kernels (``(in, heads, dim)``),
    axis 0 of their biases and of the output kernel (``(heads, dim, out)``)."""
    by_variable = {id(ref.variable): ref for ref in weight_table(model).values()}
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not (isinstance(layer, keras.layers.MultiHeadAttention) and layer.built):
            continue
        parts = {part: {name: by_variable[id(v)] for name, v in (("kernel", dense.kernel), ("bias", dense.bias))
                        if v is not None}
                 for part, dense in (("query", layer.query_dense), ("key", layer.key_dense),
                                     ("value", layer.value_dense), ("output", layer.output_dense))}
        found.append((parts["query"]["kernel"].key.rsplit("/", 2)[0], layer, parts))
    return found


def _head_slices(part, attribute, head):
    """The index of one head's slice of a MultiHeadAttention weight."""
    if part == "output":
        return (head,) if attribute == "kernel" else None  # the output bias is shared by all heads
    return (slice(None), head) if attribute == "kernel" else (head,)


def _head_masks(model, amount, criterion, scope, only, ignored, max_ratio, round_to, data):
    """Whole attention heads: a pruned head loses its query/key/value columns and biases and its
    rows of the output projection, so it adds exactly zero (compaction then drops it)."""
    layers = [(key, layer, parts) for key, layer, parts in attention_heads(model)
              if _selected(key, only, ignored)]
    all_refs = [ref for _, _, parts in layers for refs in parts.values() for ref in refs.values()]
    _check_finite(all_refs)
    gradients = _gradients_if_needed(model, data, all_refs, criterion)
    scores = []
    for key, layer, parts in layers:
        if isinstance(criterion, LayerImportance):
            score = criterion.layer_scores(layer, "head").ravel()
            if score.shape != (layer.num_heads,) or not np.isfinite(score).all():
                raise PruningError(f"{key}: the importance callable must return {layer.num_heads} finite scores, "
                                   f"got shape {score.shape}")
        else:  # a head's slice comes in four pieces (query, key, value, output kernels), merged
            score = np.zeros(layer.num_heads)
            for part, refs in parts.items():
                kernel = refs["kernel"]
                value = np.asarray(kernel.variable, dtype=np.float64)
                if criterion.needs_gradients:
                    value = value * gradients[kernel.key]
                axis = 0 if part == "output" else 1
                score = criterion.merge(score, criterion.statistic(
                    np.moveaxis(value, axis, 0).reshape(layer.num_heads, -1), 1))
            score = criterion.finish(score)
        scores.append(score)
    chosen = _select(scores, _amounts(amount, len(layers), scope), max_ratio, round_to, scope)
    masks = {}
    for (key, layer, parts), heads in zip(layers, chosen):
        for part, refs in parts.items():
            for attribute, ref in refs.items():
                mask = np.ones(tuple(ref.variable.shape), dtype=bool)
                for head in heads:
                    index = _head_slices(part, attribute, int(head))
                    if index is not None:
                        mask[index] = False
                masks[ref.key] = mask
    return masks


def _structured_scores(model, criterion, only, ignored, normalize, members, data):
    graph = DependencyGraph.of(model)
    refs_by_layer = {}
    for ref in weight_table(model).values():
        refs_by_layer.setdefault(id(ref.layer), {})[ref.attribute] = ref
    groups = [g for g in graph.groups
              if any(_selected(p, only, None) for p in g.producers)
              and not any(ignored and p in ignored for p in g.producers)]
    all_refs = [r for layer_refs in refs_by_layer.values() for r in layer_refs.values()]
    _check_finite([r for r in all_refs if r.is_kernel])
    gradients = _gradients_if_needed(model, data, [r for r in all_refs if r.variable.trainable], criterion)
    return graph, groups, [_group_scores(graph, g, criterion, members, refs_by_layer, gradients, normalize)
                           for g in groups]


def group_scores(model, importance="magnitude", members="all", layers=None, ignored_layers=None, normalize=None,
                 data=None):
    """``(graph, groups, scores)``: the dependency graph of ``model``, the groups ``masks_for(...,
    granularity="filter")`` would prune with these arguments (in its order) and one score per
    channel of each, computed now. With ``group_masks`` it is ``masks_for`` in two halves, for a
    caller that ranks the same trained weights many times (the budget environment)."""
    criterion = _check(importance, "filter", "global" if normalize else "layer", normalize)
    Choice(*MEMBERS)("members", members)
    only = _layer_matcher(model, layers, "layers")
    ignored = _layer_matcher(model, ignored_layers, "ignored_layers") or set()
    return _structured_scores(model, criterion, only, ignored, normalize, members, data)


def group_masks(graph, groups, scores, amount, scope="layer", members="all", max_ratio=None, round_to=None):
    """``(masks, pruned)``: the structured ``{weight key: keep-mask}`` of pruning ``amount`` (one
    fraction, or one per group with ``scope="layer"``) of ``groups`` ranked by ``scores`` (what
    ``group_scores`` returns), and per group the positions of its pruned channels."""
    Choice(*SCOPES)("scope", scope)
    Choice(*MEMBERS)("members", members)
    if max_ratio is not None:
        max_ratio = check_fraction("max_ratio", max_ratio)
    chosen = _select(scores, _amounts(amount, len(groups), scope), max_ratio, round_to, scope)
    pruned = [channel for g, positions in zip(groups, chosen) for channel in g.channels[positions]]
    return graph.masks(pruned, members=members, groups=groups), chosen


def _structured_masks(model, amount, criterion, scope, only, ignored, normalize, members, max_ratio, round_to, data):
    graph, groups, scores = _structured_scores(model, criterion, only, ignored, normalize, members, data)
    chosen = _select(scores, _amounts(amount, len(groups), scope), max_ratio, round_to, scope)
    pruned = [channel for g, positions in zip(groups, chosen) for channel in g.channels[positions]]
    return graph.masks(pruned, members=members, groups=groups)


def masks_for(model, amount, importance="magnitude", granularity="weight", scope="layer", ignored_layers=None,
              layers=None, include_bias=False, normalize=None, members="all", max_ratio=None,
              round_to=None, data=None):
    """``{weight key: keep-mask}`` pruning ``amount`` of ``model`` (see the module docstring).

    ``include_bias`` (weight granularity) also drops the ``int(n * amount)`` smallest biases of
    each selected layer, ranked separately (project 002's quirk); unit/filter masks always cover the
    biases of the channels they remove. ``data=(x, y)`` is the batch of a criterion that needs
    the loss gradients (``importance="taylor"``).
    """
    criterion = _check(importance, granularity, scope, normalize)
    Choice(*MEMBERS)("members", members)
    if max_ratio is not None:
        max_ratio = check_fraction("max_ratio", max_ratio)
    if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, numbers.Integral)
                                 or round_to < 1):
        raise ValueError(f"round_to must be a positive integer or None, got {round_to!r}")
    only = _layer_matcher(model, layers, "layers")
    ignored = _layer_matcher(model, ignored_layers, "ignored_layers") or set()
    if include_bias and (granularity != "weight" or scope != "layer"):
        raise ValueError("include_bias applies to per-layer weight pruning (unit masks always include biases)")
    if _is_n_m(granularity):
        return _n_m_masks(model, granularity, criterion, only, ignored, data)
    if granularity == "head":
        return _head_masks(model, amount, criterion, scope, only, ignored, max_ratio, round_to, data)
    if granularity == "weight":
        return _weight_masks(model, amount, criterion, scope, only, ignored, include_bias, data)
    return _structured_masks(model, amount, criterion, scope, only, ignored, normalize, members, max_ratio,
                             round_to, data)

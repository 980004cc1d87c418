"""The importance registry (``criteria.register_importance``): a criterion defined once, in a
user's own code, is usable by name through every public entry point (``keep_masks`` on plain
arrays, ``masks_for`` on weights and on the dependency graph's channel groups), and gives the
masks of a brute-force numpy reference that knows nothing of how the library slices channels: a
channel's entries are read off ``DependencyGraph.masks`` of that one channel. Duplicate and
unknown names, and criteria asked for what they do not score, raise the package's own errors."""

import keras
import numpy as np
import pytest

from helpers import pruning
from helpers.layers import weights as weight_table
from helpers.pruning import PruningError, criteria
from helpers.pruning.dependency import DependencyGraph
from test_dependency import random_model  # random functional CNNs: residuals, BN, depthwise, separable

L = keras.layers


# ---------------------------------------------------------------- criteria registered here, as a user would


@criteria.register_importance("test_linf")
class MaxAbs(criteria.Importance):
    """|w| for a weight; the largest |w| over every entry of a channel's slices."""

    reads = ("weights", "channels")
    merge = np.maximum

    def weight(self, values):
        return np.abs(values)

    def statistic(self, values, axis):
        return np.abs(values).max(axis=axis)


def bins(values):
    """A score unrelated to |w| (a fixed pseudo-random bin 0..7 of each weight): small integers,
    so that sums of them are exact in any order and ties are common (ties go in index order)."""
    return np.floor(8 * np.abs(np.sin(1000.0 * values)))


@criteria.register_importance("test_bins")
class Bins(criteria.Importance):
    """``bins(w)`` for a weight; their sum over a channel's slices."""

    reads = ("weights", "channels")

    def weight(self, values):
        return bins(values)

    def statistic(self, values, axis):
        return bins(values).sum(axis=axis)


@criteria.register_importance("test_reversed")
def later_channels_first(layer, granularity):
    """A layer-level criterion (a plain function, registered): the last output channels go first."""
    if granularity == "weight":
        return np.arange(np.prod(layer.kernel.shape), dtype=float).reshape(layer.kernel.shape)[..., ::-1]
    return np.arange(layer.kernel.shape[-1], dtype=float)[::-1]


REGISTERED_HERE = ("test_linf", "test_bins", "test_reversed")
REFERENCE = {  # per criterion: (score of one entry, score of a channel from all its entries)
    "test_linf": (np.abs, lambda entries: np.abs(entries).max() if entries.size else 0.0),
    "test_bins": (bins, lambda entries: bins(entries).sum()),
}


@pytest.fixture(scope="module", autouse=True)
def unregister_at_the_end():
    yield
    for name in REGISTERED_HERE:
        criteria.unregister_importance(name)


def brute_keep(scores, k):
    """Drop the ``k`` smallest scores, ties in index order (a stable sort)."""
    keep = np.ones(scores.size, bool)
    keep[np.argsort(scores.ravel(), kind="stable")[:k]] = False
    return keep.reshape(scores.shape)


def assert_same(new, old):
    assert sorted(new) == sorted(old)
    for key in old:
        np.testing.assert_array_equal(new[key], old[key], err_msg=key)


# ---------------------------------------------------------------- plain arrays (keep_masks)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["test_linf", "test_bins"])
def test_keep_masks_rank_plain_kernels_by_a_registered_criterion(seed, name):
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(2, 9)), int(rng.integers(2, 9))),
              (3, 3, int(rng.integers(1, 5)), int(rng.integers(2, 9)))]
    # values on a coarse grid: many exact ties, which must go in index order
    kernels = [rng.integers(-6, 7, size=s).astype(dtype) / 4 for s, dtype in zip(shapes, ("float32", "float64"))]
    entry, channel = REFERENCE[name]
    for granularity in ("weight", "unit"):
        if granularity == "weight":
            reference_scores = [entry(k) for k in kernels]
        else:
            reference_scores = [np.array([channel(k[..., j]) for j in range(k.shape[-1])]) for k in kernels]
        for amount in (0.0, 0.3, 0.5, 0.9):
            per_layer = pruning.keep_masks(kernels, amount, importance=name, granularity=granularity)
            for mask, s in zip(per_layer, reference_scores):
                np.testing.assert_array_equal(mask, brute_keep(s, int(s.size * amount)))
            flat = np.concatenate([s.ravel() for s in reference_scores])
            keep = brute_keep(flat, int(flat.size * amount))
            split = np.split(keep, np.cumsum([s.size for s in reference_scores])[:-1])
            for mask, part, s in zip(pruning.keep_masks(kernels, amount, importance=name, granularity=granularity,
                                                        scope="global"), split, reference_scores):
                np.testing.assert_array_equal(mask, part.reshape(s.shape))


# ---------------------------------------------------------------- weights of a model (masks_for)


@pytest.mark.parametrize("seed", range(3))
def test_weight_masks_by_a_registered_criterion(seed):
    model, _ = random_model(seed)
    refs = [ref for ref in weight_table(model).values() if ref.is_kernel]
    reference = [bins(np.asarray(ref.variable.numpy())) for ref in refs]
    for amount in (0.2, 0.6):
        masks = pruning.masks_for(model, amount, importance="test_bins")
        assert_same(masks, {ref.key: brute_keep(s, int(s.size * amount)) for ref, s in zip(refs, reference)})
        flat = np.concatenate([s.ravel() for s in reference])
        keep = brute_keep(flat, int(flat.size * amount))
        parts = np.split(keep, np.cumsum([s.size for s in reference])[:-1])
        assert_same(pruning.masks_for(model, amount, importance="test_bins", scope="global"),
                    {ref.key: part.reshape(s.shape) for ref, part, s in zip(refs, parts, reference)})


# ---------------------------------------------------------------- channels of the dependency graph


def reference_channel_scores(model, graph, group, name, members):
    """Each channel's score from every kernel entry that pruning that one channel removes."""
    kernels = {key: np.asarray(ref.variable.numpy(), np.float64)
               for key, ref in weight_table(model).items() if ref.is_kernel}
    channel = REFERENCE[name][1]
    out = []
    for label in group.channels:
        removed = graph.masks([label], members=members, groups=[group])
        entries = [kernels[key][~mask] for key, mask in removed.items() if key in kernels]
        out.append(channel(np.concatenate(entries)))
    return out


def reference_selection(scores, amount, scope):
    """Per group, the positions pruned: the ``int(n * amount)`` smallest (one channel always
    kept) per group, or globally the ``int(N * amount)`` smallest with at most 90% of any group."""
    sizes = [len(s) for s in scores]
    if scope == "layer":
        return [np.flatnonzero(~brute_keep(np.asarray(s), min(int(n * amount), n - 1))) for s, n in zip(scores, sizes)]
    caps = [min(n - 1, int(np.floor(n * 0.9 + 1e-9))) for n in sizes]
    candidates = sorted(((s, g, i) for g, group_scores in enumerate(scores) for i, s in enumerate(group_scores)),
                        key=lambda c: c[0])  # stable: ties by group, then position
    chosen, taken = [[] for _ in sizes], [0] * len(sizes)
    budget = int(sum(sizes) * amount)
    for _, g, i in candidates:
        if budget == 0:
            break
        if taken[g] < caps[g]:
            chosen[g].append(i)
            taken[g] += 1
            budget -= 1
    return [np.array(c, dtype=np.int64) for c in chosen]


def multiplier_model():
    """Depth multipliers above 1, which random_model does not draw: a separable conv reads each
    input channel through m rows of its pointwise kernel, a depthwise conv makes m outputs of it."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(5, 3, padding="same", name="c1")(inputs)
    x = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=3, name="sep")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = L.Conv2D(4, 1, name="c2")(x)
    x = L.Add(name="add")([x, L.Conv2D(4, 1, name="c3")(x)])
    return keras.Model(inputs, L.Dense(3, name="out")(L.Flatten()(x))), np.random.default_rng(5)


@pytest.mark.parametrize("seed", [*range(10), "multipliers"])
def test_channel_groups_by_a_registered_criterion(seed):
    """The largest |w| over a channel's entries is the same however they are split into slices
    (a residual conv's kernel holds a channel's column and its row, which share an entry), so the
    reference needs only which entries pruning the channel removes."""
    model, rng = multiplier_model() if seed == "multipliers" else random_model(seed)
    graph = DependencyGraph.of(model)
    name, members = "test_linf", "producers" if seed in (1, 3, 5, 7, 9) else "all"
    scores = [reference_channel_scores(model, graph, g, name, members) for g in graph.groups]
    for scope, amount in (("layer", 0.5), ("layer", float(rng.uniform(0.1, 0.9))), ("global", 0.4)):
        chosen = reference_selection(scores, amount, scope)
        pruned = [label for g, positions in zip(graph.groups, chosen) for label in g.channels[positions]]
        expected = graph.masks(pruned, members=members, groups=graph.groups)
        got = pruning.masks_for(model, amount, importance=name, granularity="filter", scope=scope, members=members)
        assert_same(got, expected)
    # the two halves the budget environment uses give the same scores
    _, groups, library = criteria.group_scores(model, name, members=members)
    for got_scores, want in zip(library, scores):
        np.testing.assert_array_equal(got_scores, want)


class CopyOfL1(criteria.Importance):
    """The built-in ``"l1"`` written again as a user would: the same scores, bit for bit, show
    that the library's channel path treats a registered criterion as it treats its own."""

    reads = ("weights", "channels", "heads")

    def weight(self, values):
        return np.abs(values)

    def statistic(self, values, axis):
        return np.abs(values).sum(axis=axis)


@pytest.mark.parametrize("seed", [*range(6), "multipliers"])
def test_a_copy_of_a_builtin_criterion_scores_like_it(seed):
    model, _ = multiplier_model() if seed == "multipliers" else random_model(seed)
    members = "producers" if seed in (1, 3, 5) else "all"
    for got, want in zip(criteria.group_scores(model, CopyOfL1(), members=members)[2],
                         criteria.group_scores(model, "l1", members=members)[2]):
        np.testing.assert_array_equal(got, want)
    assert_same(pruning.masks_for(model, 0.5, importance=CopyOfL1(), granularity="filter", scope="global",
                                  members=members),
                pruning.masks_for(model, 0.5, importance="l1", granularity="filter", scope="global", members=members))


def test_a_copy_of_a_builtin_criterion_ranks_heads_like_it():
    rng = np.random.default_rng(2)
    inputs = keras.Input((5, 12))
    a = L.MultiHeadAttention(4, 3, name="first")(inputs, inputs)
    model = keras.Model(inputs, L.MultiHeadAttention(6, 2, name="second")(a, inputs))
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    for scope in ("layer", "global"):
        assert_same(pruning.masks_for(model, 0.5, importance=CopyOfL1(), granularity="head", scope=scope),
                    pruning.masks_for(model, 0.5, importance="l1", granularity="head", scope=scope))


def test_a_registered_function_is_the_callable_it_names():
    model, _ = random_model(3)
    for granularity in ("weight", "filter"):
        assert_same(pruning.masks_for(model, 0.5, importance="test_reversed", granularity=granularity),
                    pruning.masks_for(model, 0.5, importance=later_channels_first, granularity=granularity))


def test_a_criterion_that_needs_gradients_gets_them():
    """A criterion saying ``needs_gradients`` scores ``w * dL/dw``: one with Taylor's weight
    score gives Taylor's masks; without a batch the error names it."""

    class GradientMagnitude(criteria.Importance):
        reads = ("weights",)
        needs_gradients = True

        def weight(self, values):
            return np.abs(values)

    model = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu", name="h"), L.Dense(3, name="out")])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6)).astype("float32"), rng.integers(0, 3, 16)
    assert_same(pruning.masks_for(model, 0.5, importance=GradientMagnitude(), data=(x, y)),
                pruning.masks_for(model, 0.5, importance="taylor", data=(x, y)))
    with pytest.raises(PruningError, match="'GradientMagnitude' needs a batch"):
        pruning.masks_for(model, 0.5, importance=GradientMagnitude())


# ---------------------------------------------------------------- the registry itself


def test_the_registry_names_every_criterion():
    assert criteria.IMPORTANCES[:5] == ("magnitude", "l1", "l2", "taylor", "bn_scale")
    assert set(REGISTERED_HERE) <= set(criteria.IMPORTANCES)
    linf = criteria.get_importance("test_linf")
    assert isinstance(linf, MaxAbs) and linf.name == "test_linf"
    assert criteria.get_importance(linf) is linf
    assert criteria.get_importance("taylor").needs_gradients and not criteria.get_importance("l1").needs_gradients


def test_a_name_is_registered_once():
    for name in ("test_linf", "magnitude"):
        with pytest.raises(ValueError, match=f"{name!r} is already registered"):
            criteria.register_importance(name, MaxAbs())
        with pytest.raises(ValueError, match=f"{name!r} is already registered"):
            criteria.register_importance(name)(MaxAbs)
    criteria.register_importance("test_linf", MaxAbs, replace=True)  # re-running a notebook cell
    assert isinstance(criteria.get_importance("test_linf"), MaxAbs)
    with pytest.raises(TypeError, match="importance criterion"):
        criteria.register_importance("test_number", 3)
    assert "test_number" not in criteria.IMPORTANCES


def test_an_unknown_name_names_the_registered_ones():
    model = keras.Sequential([keras.Input((4,)), L.Dense(5, name="h"), L.Dense(2, name="out")])
    calls = (lambda: pruning.masks_for(model, 0.5, importance="hessian"),
             lambda: pruning.keep_masks([np.ones((3, 3))], 0.5, importance="hessian"),
             lambda: criteria.get_importance("hessian"))
    for call in calls:
        with pytest.raises(ValueError, match="unknown importance 'hessian'") as error:
            call()
        for name in criteria.IMPORTANCES:
            assert repr(name) in str(error.value)
    with pytest.raises(TypeError):
        pruning.masks_for(model, 0.5, importance=3)


def test_a_criterion_asked_for_what_it_does_not_score_says_so():
    inputs = keras.Input((4, 6))
    attention = keras.Model(inputs, L.MultiHeadAttention(3, 2, name="mha")(inputs, inputs))
    with pytest.raises(PruningError, match="'test_linf' does not rank attention heads"):
        pruning.masks_for(attention, 0.3, granularity="head", importance="test_linf")
    plain = keras.Sequential([keras.Input((5, 5, 2)), L.Conv2D(4, 3, name="c"), L.Flatten(), L.Dense(2, name="out")])
    with pytest.raises(PruningError, match="'bn_scale': group .* has no BatchNormalization"):
        pruning.masks_for(plain, 0.5, granularity="filter", importance="bn_scale")
    with pytest.raises(PruningError, match="'bn_scale' scores channels"):
        pruning.masks_for(plain, 0.5, importance="bn_scale")

    class WeightsOnly(criteria.Importance):
        reads = ("weights",)

        def weight(self, values):
            return np.abs(values)

    with pytest.raises(PruningError, match="'WeightsOnly' does not score channels"):
        pruning.masks_for(plain, 0.5, granularity="filter", importance=WeightsOnly())
    # plain arrays have no gradients, no BatchNormalization and no layer to hand a callable
    kernel = [np.ones((3, 4))]
    for importance, reason in (("taylor", "gradients"), ("bn_scale", "BatchNormalization"),
                               (later_channels_first, "layer")):
        with pytest.raises(PruningError, match=reason):
            pruning.keep_masks(kernel, 0.5, importance=importance, granularity="unit")

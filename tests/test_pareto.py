"""Pareto filters, knee pickers and the three weighted-sum searches on synthetic fronts."""

import numpy as np
import pytest

from helpers import pareto


def brute_force_nondominated(z):
    keep = []
    for i, p in enumerate(z):
        dominated = any(np.all(q <= p) and np.any(q < p) for q in z)
        duplicate_before = any(np.array_equal(z[j], p) for j in range(i))
        keep.append(not dominated and not duplicate_before)
    return np.array(keep)


@pytest.mark.parametrize("seed", range(10))
def test_nondominated_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 6, size=(40, 2)).astype(float)  # many duplicates and ties
    np.testing.assert_array_equal(pareto.nondominated_mask(z), brute_force_nondominated(z))


def test_convex_mask_keeps_hull_vertices_only():
    front = [(1, 10), (2, 5), (4, 2.5), (8, 1.25)]           # convex, all supported
    extra = [(3, 4.5), (6, 2.0), (5, 5), (1.5, 10)]          # non-supported, non-supported, dominated, dominated
    collinear = [(2.5, 4.0), (3.0, 3.0), (3.5, 2.0)]        # (3,3) lies on the segment between its neighbours
    z = np.array(front + extra)
    mask = pareto.convex_mask(z)
    assert list(mask[:4]) == [True] * 4 and not mask[4:].any()
    np.testing.assert_array_equal(pareto.convex_mask(np.array(collinear)), [True, False, True])


def test_original_filter_removes_points_on_or_above_the_chord():
    z = np.array([(0.0, 1.0), (0.2, 0.2), (0.6, 0.6), (0.5, 0.5), (1.0, 0.0), (1.0, 0.0)])
    # (0.2,0.2) below the chord: kept; (0.6,0.6) above: removed; (0.5,0.5) on it: removed;
    # the duplicate extreme is kept once.
    np.testing.assert_array_equal(pareto.original_mask(z), [True, True, False, False, True, False])
    # collinear and degenerate inputs that made the original's Delaunay test raise
    assert pareto.original_mask(np.array([(0, 2), (1, 1), (2, 0)])).tolist() == [True, False, True]
    assert pareto.original_mask(np.array([(1, 1), (1, 1), (1, 1)])).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="shape"):
        pareto.original_mask(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="unknown filter"):
        pareto.filter_mask(np.zeros((2, 2)), "delaunay")


def test_knee_original_returns_last_on_z2_sorted_list():
    # candidates sorted by z2 ascending: large lambda2 first, (1, 0) last (REPRODUCTION_NOTES.md §11)
    weights = [(0.9, 0.1), (0.95, 0.05), (0.99, 0.01), (0.999, 0.001), (1.0, 0.0)]
    assert pareto.knee_original(weights) == len(weights) - 1
    # without the wrap-around winning, the pick is argmax(diff) - 1 (index misaligned by the skip)
    weights = [(0.5, 0.5), (0.6, 0.4), (0.99, 0.01), (0.7, 0.3)]
    ratios = np.array([1.0, 1.5, 99.0, 7 / 3])
    assert pareto.knee_original(weights) == int(np.argmax(np.abs(ratios - np.roll(ratios, 1)))) - 1


def test_knee_max_distance_finds_the_corner_and_ignores_scale():
    l_shape = np.array([(0.04, 2500), (0.045, 800), (0.05, 200), (0.1, 120), (0.2, 40)])
    assert pareto.knee_max_distance(l_shape) == 2
    scaled = l_shape * np.array([1000.0, 0.001])
    assert pareto.knee_max_distance(scaled) == 2
    symmetric = np.array([(1, 10), (2, 5), (5, 2), (10, 1)])
    assert pareto.knee_max_distance(symmetric) in (1, 2)
    assert pareto.knee_max_distance(np.array([(1.0, 2.0), (2.0, 1.0)])) in (0, 1)
    assert pareto.knee_max_distance(np.array([(1.0, 2.0)])) == 0


def test_dichotomic_weight_example_from_spec():
    weights = pareto.dichotomic_weights((0.05, 1000.0), (0.04, 1500.0))
    assert weights == pytest.approx((0.99998, 2.0e-5), rel=1e-4)
    assert sum(weights) == pytest.approx(1.0)
    assert pareto.dichotomic_weights((1.0, 1.0), (1.0, 1.0)) is None


# --- synthetic fronts -------------------------------------------------------------------------

def weighted_sum_solver(curve):
    """evaluate(weights): the curve point minimising the weighted sum, like an ideal training."""
    curve = np.asarray(curve, dtype=float)

    def evaluate(weights):
        assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0), weights
        return tuple(curve[np.argmin(curve @ np.asarray(weights))])
    return evaluate


def convex_curve():
    t = np.linspace(0.02, 1.0, 400)
    return np.column_stack([t, 1.0 / t])


def l_shaped_curve():
    ce = np.linspace(0.035, 0.25, 500)
    return np.column_stack([ce, 30 + 2500 * np.exp(-(ce - 0.035) / 0.006)])


@pytest.mark.parametrize("curve", [convex_curve(), l_shaped_curve()], ids=["convex", "L-shaped"])
@pytest.mark.parametrize("search", ["bisection", "dichotomic", "stochastic"])
def test_searches_on_synthetic_fronts(curve, search):
    evaluate = weighted_sum_solver(curve)
    run = {"bisection": lambda: pareto.bisection_search(evaluate),
           "dichotomic": lambda: pareto.dichotomic_search(evaluate, stochastic=False),
           "stochastic": lambda: pareto.dichotomic_search(evaluate, stochastic=True, seed=1)}[search]
    result = run()
    history = result.points()
    assert 3 <= len(history) <= 33
    assert [c.weights for c in result.history[:2]] == [(1.0, 0.0), (0.9, 0.1)]
    # every evaluated point lies on the front (an ideal weighted-sum solver never leaves it)
    curve_set = {tuple(p) for p in np.asarray(curve)}
    assert all(tuple(p) in curve_set for p in history)
    # the final candidates are sorted by z2 and mutually non-dominated
    final = result.points("candidates")
    assert np.all(np.diff(final[:, 1]) >= 0)
    if len(history) < 20:
        assert pareto.nondominated_mask(final).all()
    # a knee exists and is one of the candidates
    assert 0 <= pareto.knee_max_distance(final) < len(final)


def test_bisection_midpoints_and_stop_rule():
    evaluate = weighted_sum_solver(convex_curve())
    result = pareto.bisection_search(evaluate)
    assert result.history[2].weights == pytest.approx((0.95, 0.05))
    assert len(result.history) >= 20 or len(result.levels) == 5
    assert len(result.history) <= 2 + 1 + 2 + 4 + 8 + 16


def test_dichotomic_new_points_are_supported():
    curve = convex_curve()
    result = pareto.dichotomic_search(weighted_sum_solver(curve), stochastic=False)
    hull = pareto.convex_mask(curve)
    supported = {tuple(p) for p in curve[hull]}
    assert all(c.point in supported for c in result.history)


def test_stochastic_search_is_seeded_and_draws_on_degenerate_front():
    def constant(weights):
        assert min(weights) >= 0
        return (0.1, 100.0)

    a = pareto.dichotomic_search(constant, stochastic=True, seed=7, levels=3)
    b = pareto.dichotomic_search(constant, stochastic=True, seed=7, levels=3)
    c = pareto.dichotomic_search(constant, stochastic=True, seed=8, levels=3)
    assert [x.weights for x in a.history] == [x.weights for x in b.history]
    assert [x.weights for x in a.history] != [x.weights for x in c.history]
    assert any("random weight" in note for note in a.notes)
    # the random weight is drawn from [0.9 lambda1, lambda1] of the right neighbour
    assert all(0.9 * 0.9 - 1e-12 <= x.weights[0] <= 1.0 for x in a.history[2:])
    deterministic = pareto.dichotomic_search(constant, stochastic=False, levels=3)
    assert len(deterministic.history) == 2 and any("skipped" in n for n in deterministic.notes)


def test_cycling_is_reported_and_broken_by_the_stochastic_rule():
    # Training that ignores small weights (as MAdam's l1 stream does at lambda2 ~ 2e-5): every
    # weight below 0.05 lands next to the (1, 0) point, where the original filter removes it,
    # so the deterministic dichotomic search evaluates the same weights level after level.
    def sticky(weights):
        assert min(weights) >= 0
        if weights[1] == 0.0:
            return (0.04, 6700.0)
        if weights[1] >= 0.05:
            return (0.04 + 1.5 * weights[1], 100.0 + 60.0 / weights[1] - 600.0)
        return (0.041, 6650.0)  # on the chord's far side: filtered by the original rule

    deterministic = pareto.dichotomic_search(sticky, stochastic=False)
    assert any("cycles" in note for note in deterministic.notes)
    repeated = [c.weights for c in deterministic.history[3:]]
    assert len(set(repeated)) < len(repeated)
    stochastic = pareto.dichotomic_search(sticky, stochastic=True, seed=0)
    assert any("random weight" in note for note in stochastic.notes)
    assert len({c.weights for c in stochastic.history}) > len({c.weights for c in deterministic.history})


def test_searches_survive_dominated_points():
    rng = np.random.default_rng(0)
    curve = convex_curve()

    def noisy(weights):
        assert min(weights) >= 0, "a negative weight reached the trainer (B17)"
        z = np.array(curve[np.argmin(curve @ np.asarray(weights))])
        return tuple(z * (1 + 0.3 * rng.random(2)))  # up to 30% worse: some points dominated

    for search in (pareto.bisection_search, pareto.dichotomic_search):
        result = search(noisy, filter_last=True)
        assert pareto.nondominated_mask(result.points("candidates")).all()


def test_grid_search_keeps_grid_order_and_filters():
    curve = convex_curve()
    evaluate = weighted_sum_solver(curve)
    lambda2 = [0.0, 0.3, 0.1, 0.9, 0.5, 1.0]
    result = pareto.grid_search(evaluate, [(1 - w, w) for w in lambda2])
    assert [c.weights[1] for c in result.history] == pytest.approx(lambda2)
    kept = [c.weights[1] for c in result.candidates]
    # lambda2 = 0.9, 0.5 and 1.0 all land on the curve's end (1, 1): only the first survives.
    # The survivors stay in grid order (the list the original knee rule sees), not sorted by z2.
    assert kept == [0.0, 0.3, 0.1, 0.9]
    expected = pareto.original_mask(result.points())
    assert len(kept) == int(expected.sum())
    # a dominated grid point is filtered out
    noisy = pareto.grid_search(lambda w: (1.0, 1.0) if w[1] == 0.5 else evaluate(w), [(1 - w, w) for w in lambda2])
    assert 0.5 not in [c.weights[1] for c in noisy.candidates]
    with pytest.raises(ValueError, match="at least two"):
        pareto.grid_search(evaluate, [(1.0, 0.0)])


def test_search_argument_errors():
    with pytest.raises(ValueError, match="levels"):
        pareto.bisection_search(lambda w: (0, 0), levels=0)
    with pytest.raises(ValueError, match="filter"):
        pareto.dichotomic_search(lambda w: (0, 0), filter_method="hull")
    with pytest.raises(ValueError, match="two objective"):
        pareto.bisection_search(lambda w: (1.0, 2.0, 3.0))


def test_pick_knees_applies_both_rules_as_specified():
    candidates = [pareto.Candidate(w, p, 0) for w, p in [
        ((0.9, 0.1), (0.2, 40.0)), ((0.95, 0.05), (0.05, 200.0)), ((0.97, 0.03), (0.06, 900.0)),  # dominated
        ((0.99, 0.01), (0.045, 800.0)), ((1.0, 0.0), (0.04, 2500.0))]]
    picks = pareto.pick_knees(candidates)
    assert set(picks) == set(pareto.KNEE_RULES)
    assert picks["original"] is candidates[pareto.knee_original([c.weights for c in candidates])]
    pool = [c for c in candidates if c.weights != (0.97, 0.03)]
    assert picks["max-distance"] is pool[pareto.knee_max_distance([c.point for c in pool])]
    assert picks["max-distance"].weights == (0.95, 0.05)
    with pytest.raises(ValueError, match="no candidates"):
        pareto.pick_knees([])

"""Two-objective Pareto tools and the paper's weighted-sum searches (REPRODUCTION_NOTES.md §7).

Everything here is pure Python/numpy and works on points ``(z1, z2)`` to be minimised (in the
paper: test cross-entropy and L1 norm of the dense weights). The searches take a callable
``evaluate(weights) -> point`` (or ``-> {"point": (z1, z2), ...}``), so they are tested on
synthetic fronts and run on real training by passing a function that trains a network.

Faithful and clean variants, as REPRODUCTION_NOTES.md recommends (B14-B21):

* filters: ``"original"`` (non-dominated, then drop interior points on or above the chord
  between the two extremes: the original's Delaunay test, done analytically), ``"nondominated"``,
  ``"convex"`` (supported non-dominated points: the lower-left convex hull);
* knee pickers: ``knee_original`` replicates the code's rule with its wrap-around (B18);
  ``knee_max_distance`` is the clean rule (normalise both objectives, take the point farthest
  from the chord between the extremes);
* searches: bisection, deterministic and stochastic dichotomic; the stochastic one implements the
  intended "last three weights equal" rule with a seeded generator (B16); ``grid_search`` is the
  fixed weighted-sum grid of ``paretofront.py`` in the same form, so its knee is picked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FILTERS = ("original", "nondominated", "convex")


# ---------------------------------------------------------------------------------------------
# Dominance and filters
# ---------------------------------------------------------------------------------------------


def _as_points(points):
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("points must be finite")
    return array


def nondominated_mask(points):
    """Boolean mask of the non-dominated points (minimisation of both coordinates).

    A point is dropped if another point is <= in both coordinates and < in one. Of several
    identical non-dominated points only the first is kept.
    """
    z = _as_points(points)
    n = len(z)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        le = np.all(z <= z[i], axis=1)
        lt = np.any(z < z[i], axis=1)
        if np.any(le & lt):
            keep[i] = False
        elif np.any(np.all(z[:i] == z[i], axis=1) & keep[:i]):
            keep[i] = False  # an earlier duplicate is kept instead
    return keep


def _cross(o, a, b):
    """z-component of (a - o) x (b - o): > 0 if o -> a -> b turns counter-clockwise."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def convex_mask(points):
    """Mask of the supported non-dominated points: vertices of the lower-left convex hull.

    Collinear points on a hull edge are not vertices and are dropped (no weighted sum
    prefers them strictly).
    """
    z = _as_points(points)
    keep = nondominated_mask(z)
    index = np.flatnonzero(keep)
    order = index[np.argsort(z[index, 0], kind="stable")]  # increasing z1 => decreasing z2
    hull = []
    for i in order:
        while len(hull) >= 2 and _cross(z[hull[-2]], z[hull[-1]], z[i]) <= 0:
            hull.pop()
        hull.append(i)
    mask = np.zeros(len(z), dtype=bool)
    mask[hull] = True
    return mask


def original_mask(points):
    """The original ``is_pareto_efficient``: non-dominated, then every interior point on or
    above the chord joining the two extremes is removed (REPRODUCTION_NOTES.md §7, B20), done analytically.

    The extremes are the non-dominated points with the smallest z1 and the smallest z2 (the
    original took the list's first and last entries, assuming they were the extremes).
    """
    z = _as_points(points)
    keep = nondominated_mask(z)
    index = np.flatnonzero(keep)
    if len(index) <= 2:
        return keep
    left = index[np.argmin(z[index, 0])]   # smallest z1, largest z2
    right = index[np.argmin(z[index, 1])]  # smallest z2, largest z1
    for i in index:
        if i in (left, right):
            continue
        # On or above the chord (the side away from the ideal point): not supported by it.
        if _cross(z[right], z[left], z[i]) <= 0:
            keep[i] = False
    return keep


def _check_filter(method):
    if method not in FILTERS:
        raise ValueError(f"unknown filter {method!r}; choose one of {', '.join(FILTERS)}")


def filter_mask(points, method="original"):
    _check_filter(method)
    return {"original": original_mask, "nondominated": nondominated_mask, "convex": convex_mask}[method](points)


# ---------------------------------------------------------------------------------------------
# Knee pickers
# ---------------------------------------------------------------------------------------------


def knee_original(weights):
    """Index picked by the original knee rule, faithfully (REPRODUCTION_NOTES.md §7 and B18).

    ``weights`` are the candidates' (lambda1, lambda2) in the current list order. The ratios
    lambda1/lambda2 skip lambda2 = 0 (so they are misaligned with the list when such a
    candidate exists), ``diff = |r - roll(r, 1)|`` wraps around, and the pick is
    ``argmax(diff) - 1``: index -1 (the last candidate) whenever the wrap-around term wins.
    """
    weights = [tuple(map(float, w)) for w in weights]
    if not weights:
        raise ValueError("no candidates")
    ratios = np.array([w1 / w2 for w1, w2 in weights if w2 != 0])
    if len(ratios) == 0:
        return len(weights) - 1  # argmax of an empty diff is undefined; the code would crash
    diff = np.abs(ratios - np.roll(ratios, 1))
    return (int(np.argmax(diff)) - 1) % len(weights)


def knee_max_distance(points):
    """Index of the clean knee: the point farthest from the chord between the two extremes,
    after scaling both objectives to [0, 1] over the given points (which should be non-dominated).

    With fewer than three distinct points there is no interior point and so no knee; the point
    with the smallest sum of normalised objectives is returned (for two points both sums are 1
    and the first point given wins the tie).
    """
    z = _as_points(points)
    span = z.max(axis=0) - z.min(axis=0)
    span[span == 0] = 1.0
    u = (z - z.min(axis=0)) / span
    left, right = np.argmin(u[:, 0]), np.argmin(u[:, 1])
    a, b = u[left], u[right]
    chord = b - a
    length = np.hypot(*chord)
    if length == 0 or len(z) < 3:
        return int(np.argmin(u.sum(axis=1)))
    # Signed distance to the chord, positive on the side of the ideal point (0, 0) of the
    # normalised square: the bulge of a convex front.
    side = np.sign(_cross(a, b, (0.0, 0.0))) or 1.0
    distance = side * np.array([_cross(a, b, p) for p in u]) / length
    return int(np.argmax(distance))


KNEE_RULES = ("original", "max-distance")


def pick_knees(candidates):
    """The knee of a search's final candidates by each rule: ``{"original": c, "max-distance": c}``.

    The original rule sees the candidates' weights in list order, as the code did (B18); the
    clean rule chooses among the non-dominated candidates only.
    """
    if not candidates:
        raise ValueError("no candidates")
    nondominated = nondominated_mask([c.point for c in candidates])
    pool = [c for c, keep in zip(candidates, nondominated) if keep]
    return {"original": candidates[knee_original([c.weights for c in candidates])],
            "max-distance": pool[knee_max_distance([c.point for c in pool])]}


# ---------------------------------------------------------------------------------------------
# Searches
# ---------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    weights: tuple
    point: tuple
    level: int
    info: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    history: list          # every evaluated candidate, in evaluation order
    candidates: list       # the final candidate list (searches: sorted by z2, filtered unless B21
                           # applies; grid: filtered, in grid order)
    levels: list           # per level: (candidates before, new candidates)
    notes: list            # skipped pairs, random draws and other events, in words

    def points(self, which="history"):
        return np.array([c.point for c in getattr(self, which)])


def _evaluate(evaluate, weights, level):
    result = evaluate(tuple(float(w) for w in weights))
    if isinstance(result, dict):
        point, info = result["point"], {k: v for k, v in result.items() if k != "point"}
    else:
        point, info = result, {}
    point = tuple(float(p) for p in point)
    if len(point) != 2:
        raise ValueError(f"evaluate must return two objective values, got {point}")
    return Candidate(tuple(float(w) for w in weights), point, level, info)


def _check_search_args(levels, max_history, filter_method):
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if max_history < 2:
        raise ValueError(f"max_history must be >= 2, got {max_history}")
    _check_filter(filter_method)


def _run_levels(evaluate, new_weight, start, levels, max_history, filter_method, filter_last):
    """The loop shared by the searches (REPRODUCTION_NOTES.md §7.2/7.3): per level, one new weight per adjacent
    pair of the candidates sorted by z2; stop when the history reaches ``max_history``
    (checked before filtering, B21); filter the candidates between levels."""
    notes = []
    candidates = [_evaluate(evaluate, w, 0) for w in start]
    history = list(candidates)
    level_log = []
    for level in range(1, levels + 1):
        candidates = sorted(candidates, key=lambda c: c.point[1])
        before = list(candidates)
        new = []
        merged = [candidates[0]]
        for left, right in zip(candidates[:-1], candidates[1:]):
            weights = new_weight(left, right, notes, level)
            if weights is not None:
                candidate = _evaluate(evaluate, weights, level)
                new.append(candidate)
                history.append(candidate)
                merged.append(candidate)
            merged.append(right)
        candidates = merged
        level_log.append((before, new))
        seen_before = {c.weights for c in history[:len(history) - len(new)]}
        if new and all(c.weights in seen_before for c in new):
            # The filter removed these weights' points at an earlier level and the same pairs
            # gave them again: the search is in a cycle (the deterministic dichotomic search on
            # a front that training does not follow does this; the stochastic rule breaks it).
            notes.append(f"level {level}: every new weight repeats an earlier one (the search cycles)")
        if len(history) >= max_history:
            if filter_last:  # clean: the knee is never chosen from an unfiltered list
                candidates = _apply_filter(candidates, filter_method)
            else:
                notes.append(f"level {level}: stopped at {len(history)} evaluations before filtering (B21)")
            break
        candidates = _apply_filter(candidates, filter_method)
    return SearchResult(history, sorted(candidates, key=lambda c: c.point[1]), level_log, notes)


def _apply_filter(candidates, method):
    mask = filter_mask([c.point for c in candidates], method)
    return [c for c, keep in zip(candidates, mask) if keep]


START_WEIGHTS = ((1.0, 0.0), (0.9, 0.1))


def grid_search(evaluate, weights, filter_method="original"):
    """The fixed weighted-sum grid of ``paretofront.py`` (REPRODUCTION_NOTES.md §7.1) as a search result: every
    weighting is evaluated in the given order and the filter keeps the survivors **in that
    order** (not sorted), which is the list the original knee rule saw (B18)."""
    _check_filter(filter_method)
    weights = [tuple(float(w) for w in pair) for pair in weights]
    if len(weights) < 2:
        raise ValueError(f"a grid needs at least two weightings, got {len(weights)}")
    history = [_evaluate(evaluate, w, 0) for w in weights]
    mask = filter_mask([c.point for c in history], filter_method)
    candidates = [c for c, keep in zip(history, mask) if keep]
    return SearchResult(history, candidates, [], [])


def bisection_search(evaluate, start=START_WEIGHTS, levels=5, max_history=20, filter_method="original",
                     filter_last=False):
    """Bisection in weight space (REPRODUCTION_NOTES.md §7.2): the new weight of each adjacent pair is the midpoint
    of their weights."""
    _check_search_args(levels, max_history, filter_method)

    def midpoint(left, right, notes, level):
        return tuple((a + b) / 2 for a, b in zip(left.weights, right.weights))

    return _run_levels(evaluate, midpoint, start, levels, max_history, filter_method, filter_last)


def dichotomic_weights(left_point, right_point):
    """Aneja-Nair weight of a segment: the normal (d2, -d1)/||d||_1 of d = right - left.

    For d = (-0.01, +500) it gives about (0.99998, 2.0e-5). Returns None if ||d||_1 = 0.
    """
    d1, d2 = right_point[0] - left_point[0], right_point[1] - left_point[1]
    norm = abs(d1) + abs(d2)
    if norm == 0:
        return None
    return (d2 / norm, -d1 / norm)


def dichotomic_search(evaluate, start=START_WEIGHTS, levels=15, max_history=20, filter_method="original",
                      filter_last=False, stochastic=True, seed=0, faithful_stale_weight=False):
    """(Stochastic) dichotomic search (REPRODUCTION_NOTES.md §7.3).

    For each adjacent pair (sorted by z2) the new weight is the segment normal. With
    ``stochastic=True`` a random weight lambda1 ~ U(0.9 lambda1_right, lambda1_right) is drawn
    instead when the two points coincide or when the last three chosen lambda2 (rounded to 4
    decimals) are equal: the intended rule (B16), with a seeded generator. Pairs whose segment
    would give lambda2 < 0 (the neighbours dominate each other, B17) are skipped. In the
    deterministic search a pair of coinciding points is skipped; ``faithful_stale_weight``
    reuses the previous weight instead, as the original does (B15).
    """
    _check_search_args(levels, max_history, filter_method)
    rng = np.random.default_rng(seed)
    chosen = []  # lambda2 of every weight chosen, rounded, for the repeat rule
    last = {"weights": None}

    def random_weight(right):
        l1 = rng.uniform(0.9 * right.weights[0], right.weights[0])
        return (l1, 1.0 - l1)

    def normal(left, right, notes, level):
        weights = dichotomic_weights(left.point, right.point)
        repeated = len(chosen) >= 3 and len(set(chosen[-3:])) == 1
        if stochastic and (weights is None or repeated):
            weights = random_weight(right)
            chosen.clear()
            notes.append(f"level {level}: random weight {weights[1]:.3g} "
                         f"({'coinciding points' if repeated is False else 'last three weights equal'})")
        elif weights is None:
            if faithful_stale_weight and last["weights"] is not None:
                weights = last["weights"]
                notes.append(f"level {level}: coinciding points, previous weight reused (B15)")
            else:
                notes.append(f"level {level}: coinciding points, pair skipped (B15)")
                return None
        if weights[1] < 0:
            notes.append(f"level {level}: neighbours not mutually non-dominated, pair skipped (B17)")
            return None
        chosen.append(round(weights[1], 4))
        last["weights"] = weights
        return weights

    return _run_levels(evaluate, normal, start, levels, max_history, filter_method, filter_last)

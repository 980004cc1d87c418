"""Notebook 04's lambda scale (paper dots against our front), its darkest band, the tail grid and
notebook 05's knee-region sentences (helpers.experiments.weighted_sum), on synthetic tables."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from helpers import experiments, plotting
from helpers.experiments import weighted_sum as ws
from helpers.paper import FIG4_KNEE


def _front(lambdas=np.geomspace(1e-5, 5e-3, 30), noise=0.0, seed=0):
    """A synthetic joint front: nonzeros = 0.25 / lambda2, l1 = 0.02 / lambda2 (both decreasing),
    plus lambda2 = 0 (unpruned) and an empty network."""
    rng = np.random.default_rng(seed)
    lam = np.asarray(lambdas, float)
    jitter = np.exp(noise * rng.standard_normal(len(lam)))
    rows = [{"scalarization": "joint", "lambda2": 0.0, "nnz_dense": 55_000, "l1_dense": 6_700.0, "test_ce": 0.044,
             "test_acc": 0.987},
            {"scalarization": "joint", "lambda2": 0.01, "nnz_dense": 0, "l1_dense": 0.0, "test_ce": 2.30, "test_acc": 0.11}]
    rows += [{"scalarization": "joint", "lambda2": l, "nnz_dense": 0.25 / l * j, "l1_dense": 0.02 / l * j,
              "test_ce": 0.04 + 20 * l, "test_acc": 0.99 - 5 * l} for l, j in zip(lam, jitter)]
    return pd.DataFrame(rows)


def _dots(paper_lambdas, factor):
    """Paper dots that sit on ``_front`` at ``factor`` x their lambda."""
    lam = np.asarray(paper_lambdas, float)
    ours = factor * lam
    greys = 255 * lam / 8.94e-4
    a = pd.DataFrame({"test_ce": 0.04 + 20 * ours, "l1_dense": 0.02 / ours, "grey": greys, "lambda": lam})
    b = pd.DataFrame({"test_acc": 0.99 - 5 * ours, "nnz_dense": 0.25 / ours, "grey": greys, "lambda": lam})
    return {"a": a, "b": b}


def test_decreasing_fit_pools_violators():
    assert np.allclose(ws._decreasing_fit([5, 4, 3]), [5, 4, 3])
    assert np.allclose(ws._decreasing_fit([5, 3, 4, 1]), [5, 3.5, 3.5, 1])
    fitted = ws._decreasing_fit(np.random.default_rng(0).normal(size=50))
    assert np.all(np.diff(fitted) <= 1e-12)


def test_lambda_at_inverts_a_monotone_front():
    front = _front()
    lam = np.array([2e-5, 1e-4, 7e-4, 3e-3])
    assert np.allclose(ws.lambda_at(front, "nnz_dense", 0.25 / lam), lam, rtol=1e-6)
    assert np.allclose(ws.lambda_at(front, "l1_dense", 0.02 / lam), lam, rtol=1e-6)
    outside = ws.lambda_at(front, "nnz_dense", [1e9, 1e-3])  # beyond both ends of the lambda2 > 0 runs
    assert np.isnan(outside).all()
    noisy = ws.lambda_at(_front(noise=0.1), "nnz_dense", 0.25 / lam)
    assert np.all(np.abs(np.log(noisy / lam)) < 0.5)
    with pytest.raises(ValueError, match="at least 2 runs"):
        ws.lambda_at(front[front.lambda2 == 0], "nnz_dense", [1000])


def test_scale_is_recovered_per_band_and_overall():
    paper = np.array([1.1e-5, 3e-5, 1e-4, 1.8e-4, 3.5e-4, 4.5e-4, 7e-4, 8e-4])
    dots = _dots(paper, factor=1.6)
    dots["b"].loc[len(dots["b"])] = {"test_acc": 0.96, "nnz_dense": 500.0, "grey": 255.0, "lambda": 8.94e-4}  # white
    points = experiments.fig4_scale_points(dots, _front())
    assert set(points.columns) >= {"panel", "matched_on", "value", "paper_lambda", "band", "white", "our_lambda2", "k"}
    assert points.white.sum() == 1
    assert np.allclose(points[~points.white].k, 1.6, rtol=1e-6)
    table = experiments.fig4_scale_table(points)
    both = table[table.panel == "a+b"].set_index("band")
    assert both.loc["all", "dots"] == 2 * len(paper)  # the white dot is left out
    assert np.allclose(both.dots.drop("all").sum(), both.loc["all", "dots"])
    assert np.allclose(both.k_median, 1.6) and np.allclose(both.k_q25, 1.6) and np.allclose(both.k_q75, 1.6)
    summary = experiments.fig4_scale_summary(table)
    assert "all: k = 1.60 (IQR 1.60-1.60, 16 dots)" in summary


def test_scale_table_with_no_usable_dot_is_nan_not_an_error():
    dots = _dots([8e-4], factor=1.0)
    dots["a"]["grey"] = dots["b"]["grey"] = 255.0
    table = experiments.fig4_scale_table(experiments.fig4_scale_points(dots, _front()))
    assert (table.dots == 0).all() and table.k_median.isna().all()
    assert experiments.fig4_scale_summary(table) == ""


def test_darkest_band_compares_l1_and_accuracy():
    front = _front(lambdas=[1e-5, 2.31e-5, 3e-5, 1e-4])  # nonzeros 25,000 / 10,823 / 8,333 / 2,500
    front.loc[front.lambda2 == 1e-5, ["l1_dense", "test_acc"]] = [1_800.0, 0.987]
    dots = {"a": pd.DataFrame({"test_ce": [0.037, 0.040], "l1_dense": [2_500.0, 2_400.0], "grey": [3.0, 3.0],
                               "lambda": [1.1e-5, 1.1e-5]}),
            "b": pd.DataFrame({"test_acc": [0.990, 0.991], "nnz_dense": [25_000.0, 23_000.0], "grey": [3.0, 3.0],
                               "lambda": [1.1e-5, 1.1e-5]})}
    table = experiments.fig4_darkest_band(dots, front)
    ours = table[table.source == "ours (joint)"]
    assert len(ours) == 1 and ours.lambda2.iloc[0] == 1e-5
    assert ours.l1_vs_paper.iloc[0] == pytest.approx(1_800 / 2_450 - 1)
    assert ours.acc_minus_paper_points.iloc[0] == pytest.approx(100 * (0.987 - 0.9905))
    assert (table.source == "paper (digitised)").sum() == 2


def test_grid_adds_extra_weightings_once():
    base = experiments.weighted_sum_grid(dense_points=3, dense_max=9e-4, include_original=False)
    more = experiments.weighted_sum_grid(dense_points=3, dense_max=9e-4, include_original=False,
                                         extra_lambda2=[2e-3, 9e-4, 6e-3])
    assert [c.weights[1] for c in more] == [c.weights[1] for c in base] + [2e-3, 6e-3]
    with pytest.raises(ValueError, match="extra_lambda2"):
        experiments.weighted_sum_grid(dense_points=0, extra_lambda2=[1.5])


KNEES = pd.DataFrame([
    {"methods": "bisection", "scalarization": "separate", "lambda2": 0.03125, "seeds": 3, "test_acc_mean": 0.9806,
     "test_ce_mean": 0.0654, "nnz_dense_mean": 3634.0},
    {"methods": "dichotomic", "scalarization": "joint", "lambda2": 3.36e-4, "seeds": 3, "test_acc_mean": 0.9845,
     "test_ce_mean": 0.0499, "nnz_dense_mean": 2639.0},
    {"methods": "grid", "scalarization": "joint", "lambda2": 3e-4, "seeds": 3, "test_acc_mean": 0.983,
     "test_ce_mean": 0.06, "nnz_dense_mean": 3000.0},
])


def test_knee_sentences_follow_the_numbers():
    sentences = experiments.knee_region_verdict(KNEES, FIG4_KNEE)
    assert len(sentences) == 3
    bisection, dichotomic, grid = sentences
    assert "outside it in nonzeros 3,634 (above 3,500 by 134)" in bisection
    assert "inside the knee region inferred from the paper's figure in test CE 0.0654" in bisection
    assert "outside it in test CE 0.0499 (below 0.0500 by 0.0001)" in dichotomic
    assert "in every coordinate" in grid and "outside" not in grid
    assert experiments.knee_region_verdict(KNEES, FIG4_KNEE, scalarization="separate") == [bisection]
    assert experiments.knee_region_verdict(KNEES, FIG4_KNEE, methods=["grid"]) == [grid]


def test_tail_figure_draws_every_point():
    front = _front()
    dots = _dots([1e-5, 1e-4, 5e-4], factor=1.5)
    points = experiments.fig4_scale_points(dots, front)
    fig = plotting.fig4_tail_at_paper_axes(front, dots, points, title="synthetic")
    try:
        assert len(fig.axes) == 5  # panels (a), (b), the lambda scale, two colour bars
        texts = [t.get_text() for ax in fig.axes[:2] for t in ax.texts]
        assert any("tail:" in t and "off the axes" in t for t in texts)  # the empty network, counted
    finally:
        matplotlib.pyplot.close(fig)
    fig = plotting.fig4_tail_at_paper_axes(front)
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)


def test_knee_box_and_reference_lines_are_labelled_as_inferred():
    assert plotting.ORIGINAL_REFERENCE_LABEL == "the original code's reference line"
    import inspect

    assert "inferred from the paper's figure" in inspect.getsource(plotting.plot_knees_objective_space)
    assert "ORIGINAL_REFERENCE_LABEL" in inspect.getsource(plotting.plot_nonzeros)

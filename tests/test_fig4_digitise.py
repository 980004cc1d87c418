"""helpers.fig4_digitise: the paper's Fig. 4 read off its PNG (tick maps, colour bar, dots), and the
detector on a synthetic image with known dots."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import fig4_digitise as f4
from helpers.paper import FIG4_AXES

# the rows / columns the tick marks are read on (fig4_digitise's PANEL_TICKS comment)
TICK_ROW = {"a": 228, "b": 227}
TICK_COLUMN = {"a": 98, "b": 424}


@pytest.fixture(scope="module")
def image():
    return f4.load_image()


@pytest.fixture(scope="module")
def dots():
    return f4.digitise_fig4()


def _centroid(profile, centre, reach=3):
    """Darkness-weighted centroid of ``profile`` (grey levels) within ``reach`` of ``centre``."""
    lo = int(round(centre)) - reach
    window = 255.0 - profile[lo:lo + 2 * reach + 1]
    return lo + float((window * np.arange(len(window))).sum() / window.sum())


def test_image_is_the_papers_figure(image):
    assert image.shape == (387, 717)
    assert image.min() >= 0 and image.max() <= 255


@pytest.mark.parametrize("panel", ["a", "b"])
def test_tick_maps_reproduce_the_tick_pixels(image, panel):
    """Each tick's pixel is where the image has its mark, and the fitted map sends it to its value."""
    ticks = f4.PANEL_TICKS[panel]
    for pixel, value in ticks["x"]:
        assert abs(_centroid(image[TICK_ROW[panel], :], pixel) - pixel) < 0.6
        x, _ = f4.pixel_to_data(panel, pixel, 0.0)
        assert abs(x - value) < 0.02 * (ticks["x"][1][1] - ticks["x"][0][1])
    for pixel, value in ticks["y"]:
        assert abs(_centroid(image[:, TICK_COLUMN[panel]], pixel) - pixel) < 0.6
        _, y = f4.pixel_to_data(panel, 0.0, pixel)
        assert abs(y - value) < 0.02 * (ticks["y"][1][1] - ticks["y"][0][1])


def test_colour_bar_is_linear_from_black_zero_to_white_about_9e4(image):
    bar = f4.colour_bar(image)
    assert len(bar) > 140
    assert np.all(np.diff(bar.grey.to_numpy()) < 0)  # lighter towards the top, every row
    slope, intercept = np.polyfit(bar["lambda"], bar.grey, 1)
    residual = bar.grey - (slope * bar["lambda"] + intercept)
    assert np.abs(residual).max() < 2.5  # linear to the grey levels' rounding
    assert abs(f4.grey_to_lambda(0.0, bar)) < 1.2e-5 and abs(intercept) < 2  # black is 0
    assert 8.8e-4 < f4.grey_to_lambda(255.0, bar) < 9.0e-4  # white is about 8.9e-4
    assert abs(f4.grey_to_lambda(3.0, bar) - 1.1e-5) < 0.3e-5  # the darkest dots' grey


def test_dot_counts_are_stable_and_within_the_papers_ranges(dots):
    assert {p: len(t) for p, t in dots.items()} == {"a": 23, "b": 26}
    assert f4.digitise_fig4()["b"].equals(dots["b"])  # deterministic
    a, b = dots["a"], dots["b"]
    assert a.test_ce.between(0.03, 0.21).all() and a.l1_dense.between(0, 2_600).all()
    assert b.test_acc.between(0.95, 0.995).all() and b.nnz_dense.between(0, 26_000).all()
    for t in (a, b):
        assert t["lambda"].between(0, 9e-4).all() and t.grey.between(0, 255).all()
        x, y = t.columns[2], t.columns[3]
        for name, value in ((x, t[x]), (y, t[y])):
            panel = "a" if x == "test_ce" else "b"
            lo, hi = FIG4_AXES[panel]["x" if name == x else "y"]
            assert value.between(lo, hi).all()


def test_darkest_dots_have_the_grey_of_lambda_1e5_not_0(dots):
    top = dots["b"].head(2)  # sorted by nonzeros, largest first
    assert top.nnz_dense.between(23_000, 25_500).all() and top.test_acc.between(0.989, 0.992).all()
    assert (top.grey <= 5).all() and top["lambda"].between(0.5e-5, 2e-5).all()
    lightest = dots["b"][dots["b"].nnz_dense < 900]
    assert len(lightest) >= 3 and (lightest.grey >= 252).all()  # the white tail: at the top of the bar


def _synthetic(seed, n=14, size=240, s=16):
    """An image with ``n`` markers (black rim, grey fill) at known pixel centres and greys."""
    rng = np.random.default_rng(seed)
    fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, size), ax.set_ylim(size, 0), ax.axis("off")
    truth = []
    while len(truth) < n:
        r, c = rng.uniform(20, size - 20, 2)
        if all(np.hypot(r - pr, c - pc) > 10 for pr, pc, _ in truth):
            truth.append((r, c, float(rng.choice([0, 60, 128, 200, 255]))))
    for r, c, grey in truth:  # pixel (r, c) spans [c, c + 1] x [r, r + 1] in these data coordinates
        ax.scatter([c + 0.5], [r + 0.5], s=s, color=str(grey / 255), edgecolors="black", linewidths=0.5)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].mean(axis=2)
    plt.close(fig)
    return image, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_dots_are_recovered(seed):
    image, truth = _synthetic(seed)
    found = f4.detect_dots(image, (0, image.shape[1] - 1, 0, image.shape[0] - 1))
    assert len(found) == len(truth)
    for r, c, grey in truth:
        distance = np.hypot(found.row - r, found.col - c)
        j = int(np.argmin(distance))
        # centres within about 2 px (a dark-grey fill under a black rim is found on its rim), greys
        # exact for black, mid-grey and white fills, at most 15 levels darker for dark grey
        assert distance[j] < 2.3
        assert -15 <= found.grey[j] - grey <= 1


def test_two_overlapping_dark_markers_stay_two(image):
    """The paper's top-left pair in panel (a), centres about 3 px apart, is read as two dots."""
    found = f4.find_dots("a", image)
    pair = found[found.l1_dense > 2_000]
    assert len(pair) == 2 and np.hypot(*(pair[["row", "col"]].diff().iloc[1])) < 3.5

"""Digitise the paper's Fig. 4 (``pareto-front-with-knee.png``, 717 x 387 px): the dots of both
panels in data coordinates, their grey level, and the lambda that grey stands for on the figure's
colour bar (linear, black = 0 to white = about 9e-4).

Calibration (all constants below were read off this PNG once, by hand-checked scripts):

* Axis ticks: each tick mark's centre is the darkness-weighted centroid of the tick's pixels
  along the axis (a row just inside the bottom frame for the x ticks, a column just inside the
  left frame for the y ticks). Only labelled or evenly spaced ticks are used; a straight line
  is fitted through them, so the pixel-to-data maps are least-squares over 4-6 ticks each.
* Colour bar: the 8e-4 ... 0 tick centroids on the bar's left edge (rows), and the bar's grey
  level read down one interior pixel column; rows within one pixel of a tick are left out (the
  tick marks are drawn over the bar).
* Dots (``detect_dots``): markers are filled circles about 5 px across with a dark rim. Dark
  markers are found first by their cores (mean darkness within ``DOT_CORE_RADIUS`` px at least
  ``DOT_DARK_CORE``: two overlapping dark markers have one broad contrast peak but two cores),
  then every marker as a local maximum, on a half-pixel grid, of (mean darkness within
  ``DOT_DISK`` px) - (mean darkness ``DOT_BACKGROUND`` px away) above ``DOT_THRESHOLD`` with a rim
  of mean darkness ``DOT_RIM``. Two candidates closer than ``DOT_MIN_DISTANCE`` are one dot, and
  closer than ``DOT_SEPARATION`` they are one unless the grey between them departs by
  ``DOT_SADDLE`` from both (a light gap between dark markers, a dark rim between light ones).
  Markers that overlap by more than about half still merge (the knee cluster): the counts (23 in
  panel a, 26 in panel b) are the resolvable dots, not the 35-40 points of the figure.
* A dot's grey is the lightest pixel within ``DOT_CORE`` px of its centre: the fill is drawn
  inside a rim at least as dark, so anti-aliasing only darkens the pixels the rim touches (a black
  dot reads its black core, a white one its white centre). It is mapped to lambda through the
  bar's (grey, lambda) column. On synthetic markers (``tests/test_fig4_digitise.py``) centres
  come back within about 2 px and greys exactly, except that a dark-grey fill under a black rim
  can be read on its rim, up to about 15 grey levels (5e-5 in lambda) too dark; a white dot is
  at the top of the bar, so its lambda is only a lower bound; a white gap inside a cluster of
  markers can read as a light dot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIG4_IMAGE = Path(__file__).with_name("reference") / "pareto-front-with-knee.png"

# Panel frames (pixel columns c0..c1 and rows r0..r1 of the axis box lines).
PANEL_BOX = {"a": (94, 255, 71, 232), "b": (420, 581, 69, 230)}
# (pixel, value) of the tick centroids. (a) x: ticks every 0.05 (labels 0, 0.1, 0.2), read on
# row 228; y: ticks every 500 (labels 0, 1,000, 2,000), read on column 98. (b) x: ticks every
# 0.01 (labels 0.94 ... 1), read on row 227; y: ticks every 5,000 (labels 0, 10,000, ...), column 424.
PANEL_TICKS = {
    "a": {"x": ((126.0, 0.05), (158.0, 0.10), (190.27, 0.15), (222.52, 0.20)),
          "y": ((221.33, 0.0), (194.45, 500.0), (167.57, 1000.0), (140.70, 1500.0), (114.0, 2000.0), (87.0, 2500.0))},
    "b": {"x": ((443.0, 0.94), (466.0, 0.95), (489.0, 0.96), (512.0, 0.97), (535.0, 0.98), (558.0, 0.99)),
          "y": ((215.54, 0.0), (191.0, 5000.0), (166.67, 10000.0), (142.0, 15000.0), (118.0, 20000.0), (93.36, 25000.0))},
}
PANEL_QUANTITIES = {"a": ("test_ce", "l1_dense"), "b": ("test_acc", "nnz_dense")}
# Colour bar of panel (a): interior columns 273-276 (read on 275), frame rows 71 (top) and 232
# (bottom); tick centroids (row, lambda) on its left edge (column 270): 0 at 232.0, 2e-4 at 196.0,
# 4e-4 at 160.4, 6e-4 at 124.56, 8e-4 at 88.73, so the top of the bar (row 72) is about 8.95e-4.
COLOUR_BAR_COLUMN = 275
COLOUR_BAR_ROWS = (72, 231)
COLOUR_BAR_TICKS = ((232.0, 0.0), (196.0, 2e-4), (160.4, 4e-4), (124.56, 6e-4), (88.73, 8e-4))

DOT_DISK = 2.5  # px: a marker's radius (its outermost, partly covered pixels reach about 2.8)
DOT_RING = (1.4, 2.8)  # px from the centre: where the dark rim is
DOT_BACKGROUND = (3.5, 4.6)  # px from the centre: the paper around a lone dot
DOT_CORE = 0.75  # px: the pixels whose lightest value is the fill (1, 2 or 4 pixels)
DOT_CORE_RADIUS = 1.0  # px: the core of a dark marker
DOT_DARK_CORE = 0.75  # mean darkness of a dark marker's core (grey below about 64)
DOT_THRESHOLD = 0.1  # contrast (0-1 darkness) of a dot against its surroundings
DOT_RIM = 0.2  # mean darkness of the rim
DOT_MIN_DISTANCE = 2.5  # px between two dots' centres (two markers overlapping by half stay apart)
DOT_SEPARATION = 6.5  # px: candidates closer than this are one marker unless a saddle parts them
DOT_SADDLE = 20.0  # grey levels the profile between two candidates must depart from both ends
DOT_MARGIN = 8  # px kept clear of the frame (the tick marks are about 6 px long)


def load_image(path=None):
    """The figure as a float array of grey levels (0 = black, 255 = white)."""
    from PIL import Image

    return np.asarray(Image.open(FIG4_IMAGE if path is None else path).convert("L"), dtype=float)


def _linear(pairs):
    """(slope, intercept) of value = slope * pixel + intercept through (pixel, value) pairs."""
    pixels, values = np.array(pairs, dtype=float).T
    return tuple(np.polyfit(pixels, values, 1))


def pixel_to_data(panel, col, row):
    """Data coordinates (x, y) of pixel (col, row) in ``panel`` ("a" or "b")."""
    (sx, ix), (sy, iy) = _linear(PANEL_TICKS[panel]["x"]), _linear(PANEL_TICKS[panel]["y"])
    return sx * np.asarray(col, float) + ix, sy * np.asarray(row, float) + iy


def colour_bar(image=None):
    """The colour bar read down its pixel column: a DataFrame of (row, grey, lambda), lambda from
    the bar's ticks, rows next to a tick mark left out."""
    image = load_image() if image is None else image
    slope, intercept = _linear([(r, v) for r, v in COLOUR_BAR_TICKS])
    rows = np.arange(COLOUR_BAR_ROWS[0], COLOUR_BAR_ROWS[1] + 1)
    ticks = np.array([r for r, _ in COLOUR_BAR_TICKS])
    keep = np.abs(rows[:, None] - ticks[None, :]).min(axis=1) > 1.5
    rows = rows[keep]
    return pd.DataFrame({"row": rows, "grey": image[rows, COLOUR_BAR_COLUMN],
                         "lambda": np.clip(slope * rows + intercept, 0.0, None)})


def grey_to_lambda(grey, bar=None):
    """lambda of a grey level (0-255) on the figure's colour bar (interpolated in its column)."""
    bar = colour_bar() if bar is None else bar
    order = np.argsort(bar["grey"].to_numpy(), kind="stable")
    return np.interp(np.asarray(grey, float), bar["grey"].to_numpy()[order], bar["lambda"].to_numpy()[order])


def _box_means(ink, distance_lo, distance_hi, dy, dx, reach=5):
    """Mean of ``ink`` over the pixels whose centres lie ``distance_lo``-``distance_hi`` px from the point
    (row + dy, col + dx), for every pixel (row, col) of ``ink`` (zero padding outside)."""
    height, width = ink.shape
    rr, cc = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    d = np.hypot(rr - dy, cc - dx)
    mask = (d >= distance_lo) & (d <= distance_hi)
    padded = np.pad(ink, reach)
    total = np.zeros_like(ink)
    for y, x in zip(*np.nonzero(mask)):
        total += padded[y:y + height, x:x + width]
    return total / mask.sum()


def _bilinear(image, rows, cols):
    """``image`` at sub-pixel (row, col) positions (pixel centres at integer coordinates)."""
    rows, cols = np.clip(rows, 0, image.shape[0] - 1), np.clip(cols, 0, image.shape[1] - 1)
    r0, c0 = np.minimum(np.floor(rows).astype(int), image.shape[0] - 2), np.minimum(np.floor(cols).astype(int), image.shape[1] - 2)
    fr, fc = rows - r0, cols - c0
    return ((1 - fr) * (1 - fc) * image[r0, c0] + (1 - fr) * fc * image[r0, c0 + 1]
            + fr * (1 - fc) * image[r0 + 1, c0] + fr * fc * image[r0 + 1, c0 + 1])


def _apart(image, first, second):
    """Whether two candidate centres closer than ``DOT_SEPARATION`` are two markers, not one: the
    grey along the segment between them departs by ``DOT_SADDLE`` from both ends (a light gap
    between dark markers, or a dark rim between light ones). Inside one flat fill it does not."""
    t = np.linspace(0.2, 0.8, 7)
    rows, cols = first[0] + t * (second[0] - first[0]), first[1] + t * (second[1] - first[1])
    profile = _bilinear(image, rows, cols)
    ends = _bilinear(image, np.array([first[0], second[0]]), np.array([first[1], second[1]]))
    return bool(profile.max() >= ends.max() + DOT_SADDLE or profile.min() <= ends.min() - DOT_SADDLE)


def detect_dots(image, box, margin=DOT_MARGIN, threshold=DOT_THRESHOLD, rim=DOT_RIM,
                min_distance=DOT_MIN_DISTANCE):
    """Filled circular markers with a dark rim in ``image`` (grey levels 0-255) inside ``box`` =
    (col0, col1, row0, row1), kept ``margin`` px clear of it: a DataFrame of sub-pixel centres (row,
    col, on a half-pixel grid), contrast and fill grey, strongest first.

    A dot is a local maximum of contrast = (mean darkness within ``DOT_DISK`` px) - (mean darkness
    ``DOT_BACKGROUND`` px away) above ``threshold``, whose rim (``DOT_RING`` px from the centre) is on
    average at least ``rim`` dark, and at least ``min_distance`` px from a stronger dot. Its grey is
    the lightest pixel within ``DOT_CORE`` px of its centre: the fill is drawn inside a rim at least
    as dark as the fill, so anti-aliasing only darkens the pixels the rim touches; a black dot reads
    its black core, a white dot its white centre."""
    image = np.asarray(image, dtype=float)
    ink = (255.0 - image) / 255.0
    c0, c1, r0, r1 = box
    height, width = ink.shape

    def half_pixel(function):
        """``function(dy, dx)`` (an H x W array) on a half-pixel grid: entry (2 r + i, 2 c + j) is the
        value at centre (r + i/2, c + j/2)."""
        out = np.empty((2 * height, 2 * width))
        for i in (0, 1):
            for j in (0, 1):
                out[i::2, j::2] = function(i / 2, j / 2)
        return out

    def peaks(score, keep):
        """(row, col, score) of the local maxima of ``score`` (8 half-pixel neighbours) where ``keep``,
        inside the box less the margin."""
        padded = np.pad(score, 1, constant_values=-np.inf)
        neighbours = np.max([padded[1 + y:1 + y + 2 * height, 1 + x:1 + x + 2 * width]
                             for y in (-1, 0, 1) for x in (-1, 0, 1) if (y, x) != (0, 0)], axis=0)
        keep = keep & (score >= neighbours)
        keep[:2 * (r0 + margin), :] = keep[2 * (r1 - margin) + 1:, :] = False
        keep[:, :2 * (c0 + margin)] = keep[:, 2 * (c1 - margin) + 1:] = False
        r2, c2 = np.nonzero(keep)
        return [(r / 2, c / 2, s) for r, c, s in zip(r2, c2, score[r2, c2])]

    contrast = half_pixel(lambda dy, dx: _box_means(ink, 0.0, DOT_DISK, dy, dx)
                          - _box_means(ink, *DOT_BACKGROUND, dy, dx))
    ring = half_pixel(lambda dy, dx: _box_means(ink, *DOT_RING, dy, dx))
    core = half_pixel(lambda dy, dx: _box_means(ink, 0.0, DOT_CORE_RADIUS, dy, dx))
    # dark dots first, by their cores (two overlapping dark markers have one broad contrast peak but
    # two cores); then every marker by its contrast against the paper around it
    found = sorted(peaks(core, core >= DOT_DARK_CORE), key=lambda d: -d[2])
    found += sorted(peaks(contrast, (contrast > threshold) & (ring >= rim)), key=lambda d: -d[2])
    dots = []
    for r, c, _ in found:
        near = [(pr, pc) for pr, pc, _ in dots if np.hypot(r - pr, c - pc) < DOT_SEPARATION]
        if all(np.hypot(r - pr, c - pc) >= min_distance and _apart(image, (r, c), (pr, pc)) for pr, pc in near):
            dots.append((r, c, float(contrast[int(2 * r), int(2 * c)])))
    grid_r, grid_c = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    greys = [float(image[np.hypot(grid_r - r, grid_c - c) <= DOT_CORE].max()) for r, c, _ in dots]
    return pd.DataFrame({"row": [d[0] for d in dots], "col": [d[1] for d in dots],
                         "contrast": [d[2] for d in dots], "grey": greys})


def find_dots(panel, image=None, bar=None):
    """The resolvable dots of ``panel`` ("a": CE vs l1, "b": accuracy vs nonzeros): a DataFrame of
    pixel centre (row, col), data coordinates (named as in notebook 04's grid), grey and lambda,
    sorted by the y quantity (largest first)."""
    image = load_image() if image is None else image
    dots = detect_dots(image, PANEL_BOX[panel])
    x_name, y_name = PANEL_QUANTITIES[panel]
    dots[x_name], dots[y_name] = pixel_to_data(panel, dots.col, dots.row)
    dots["lambda"] = grey_to_lambda(dots.grey, colour_bar(image) if bar is None else bar)
    columns = ["row", "col", x_name, y_name, "grey", "lambda", "contrast"]
    return dots[columns].sort_values(y_name, ascending=False, kind="stable").reset_index(drop=True)


def digitise_fig4(path=None):
    """Both panels' dots: {"a": DataFrame, "b": DataFrame} (see ``find_dots``)."""
    image = load_image(path)
    bar = colour_bar(image)
    return {panel: find_dots(panel, image, bar) for panel in PANEL_BOX}

"""Shared plotting style, colours and schematic figures of the package.

Every notebook calls :func:`set_style` once and takes method colours from
:data:`OPTIMIZER_COLORS` (through :func:`color`), so one method looks the same
in every figure of the reproduction. :func:`savefig` writes each figure as PNG
and PDF under ``figures/<folder>/`` of the project root.

The two schematic figures of the paper (Reiners, Klamroth & Stiglmayr,
arXiv 2008.13590) are drawn by :func:`draw_dense_vs_sparse` (Fig. 1) and
:func:`draw_objective_space` (Fig. 2).

Only numpy, matplotlib and seaborn are used, so this module can be imported
without TensorFlow.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch, Polygon, Rectangle

from .paper import FIG4_AXES
from .paths import display_path, project_root
from .run_config import has_scalarization
from .validation import check_int

__all__ = [
    "OPTIMIZER_COLORS",
    "OPTIMIZER_LABELS",
    "set_style",
    "color",
    "label",
    "project_root",
    "display_path",
    "savefig",
    "draw_dense_vs_sparse",
    "draw_objective_space",
]

# ---------------------------------------------------------------------------
# Colours and labels
# ---------------------------------------------------------------------------

# Built from seaborn's "colorblind" palette (Okabe-Ito-like) plus lighter
# tints from the same hue families. Each multiobjective optimizer gets the
# saturated colour and its single-objective baseline a lighter tint of the same
# hue, so the pairs read as related while staying distinguishable (plots should
# still add a second cue, e.g. dashed lines for the baselines).
OPTIMIZER_COLORS: dict[str, str] = {
    # multiobjective methods (saturated) and their baselines (light tints)
    "smgd": "#0173b2",  # colorblind blue
    "sgd": "#56b4e9",  # colorblind sky blue
    "madam": "#d55e00",  # colorblind vermillion
    "adam": "#f0a04b",  # light orange
    "mrmsprop": "#029e73",  # colorblind bluish green
    "rmsprop": "#7fd1b3",  # light bluish green
    # classic pruning: our GMP and the tfmot reference implementation share
    # the purple family because they implement the same schedule
    "gmp": "#cc78bc",  # colorblind reddish purple
    "tfmot": "#f5b6e3",  # light pink
    "uniform": "#ca9161",  # colorblind light brown
    "global": "#8c564b",  # tab brown
    # the budget-constrained RL pruner is the one "other" method; near-black
    # keeps it away from every hue family above
    "rl": "#333333",
}

OPTIMIZER_LABELS: dict[str, str] = {
    "smgd": "SMGD",
    "madam": "MAdam",
    "mrmsprop": "MRMSprop",
    "sgd": "SGD",
    "adam": "Adam",
    "rmsprop": "RMSprop",
    "gmp": "GMP (ours)",
    "tfmot": "tfmot GMP",
    "uniform": "uniform magnitude",
    "global": "global magnitude",
    "rl": "constrained RL",
}


# What a method without an entry above gets (a newly registered optimizer, say): grey, and its name.
DEFAULT_COLOR = "#808080"


def color(name: str) -> str:
    """Hex colour of a method (case-insensitive canonical name, e.g. ``"madam"``);
    ``DEFAULT_COLOR`` for a name without its own colour."""
    return OPTIMIZER_COLORS.get(str(name).strip().lower(), DEFAULT_COLOR)


def label(name: str) -> str:
    """Display name of a method (case-insensitive canonical name, e.g. ``"gmp"``); the name itself
    for one without its own label."""
    return OPTIMIZER_LABELS.get(str(name).strip().lower(), str(name))


def method_label(optimizer: str, scalarization: str) -> str:
    """``"MAdam (joint)"``: an optimizer's label with its scalarization, where it has one to name
    (``helpers.run_config.has_scalarization``)."""
    return label(optimizer) + (f" ({scalarization})" if has_scalarization(optimizer) else "")


# ---------------------------------------------------------------------------
# Style and saving
# ---------------------------------------------------------------------------


def set_style() -> None:
    """Apply the package's plotting style (seaborn whitegrid, "notebook" context).

    Calling it again gives the same state, because ``sns.set_theme`` starts
    from matplotlib's defaults each time.
    """
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette="colorblind",
        rc={
            "font.size": 12,
            "axes.titlesize": 14,
            "axes.labelsize": 12,
            "xtick.labelsize": 11,
            "ytick.labelsize": 11,
            "legend.fontsize": 11,
            "legend.title_fontsize": 11,
            "figure.titlesize": 15,
            "figure.dpi": 100,
            # PDF output with embeddable TrueType fonts keeps text selectable
            "pdf.fonttype": 42,
            "savefig.bbox": "tight",
        },
    )


# Fixed file metadata: no creation date, no software version, so a figure drawn twice from the
# same numbers is byte-identical (a rerun leaves git clean).
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "Creator": None, "Producer": None}


def savefig(fig: Figure, name: str, folder: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``<folder>/<name>.png`` (150 dpi) and ``.pdf``, with fixed metadata.

    Args:
        fig: the figure to save.
        name: file name without extension.
        folder: the folder to write into (created if missing). A notebook passes
            ``outputs.figures_dir()``, the object its check cell returned: ``figures/<notebook>/``
            on its default parameters, ``figures/<notebook>/variants/<slug>/`` on others
            (``helpers.notebooks.output_folders``).

    Returns:
        The written paths, PNG first.
    """
    out_dir = Path(folder).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext, metadata in (("png", PNG_METADATA), ("pdf", PDF_METADATA)):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=metadata)
        written.append(path)
    return written


# ---------------------------------------------------------------------------
# Fig. 1: dense versus sparse network
# ---------------------------------------------------------------------------

# Colours of the paper's Fig. 1: dark input/output neurons, light hidden ones.
_NAVY = "#0b3a6f"
_LIGHT_BLUE = "#6a9fd8"
_ARROW_GREEN = "#8cc63f"
_ARROW_EDGE = "#5a8a1f"
_DEAD_GREY = "0.6"


def _sparse_masks(
    rng: np.random.Generator, layer_sizes: Sequence[int], keep_fraction: float
) -> list[np.ndarray]:
    """Random boolean connection masks, one ``(n_in, n_out)`` per layer pair.

    Each layer keeps ``round(keep_fraction * n_in * n_out)`` connections, but at
    least ``max(n_in, n_out) - 1``: narrow layers such as the 5 -> 1 output
    layer would otherwise keep only one or two connections and take most of
    the network with them, whereas the paper's sketch loses only a neuron or so.
    """
    masks = []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        n = n_in * n_out
        # an exact count (not Bernoulli draws) makes keep_fraction what you see
        k = int(np.clip(max(round(keep_fraction * n), max(n_in, n_out) - 1), 1, n))
        flat = np.zeros(n, dtype=bool)
        flat[rng.choice(n, size=k, replace=False)] = True
        masks.append(flat.reshape(n_in, n_out))
    return masks


def _alive_neurons(masks: list[np.ndarray], layer_sizes: Sequence[int]) -> list[np.ndarray]:
    """Neurons on at least one input-to-output path of the kept connections.

    A neuron without incoming connections only passes on its bias, and one
    without outgoing connections does not influence the output, so both (and
    everything that depends only on them) are effectively removed.
    """
    forward = [np.ones(layer_sizes[0], dtype=bool)]
    for m in masks:
        forward.append((m & forward[-1][:, None]).any(axis=0))
    backward = [np.ones(layer_sizes[-1], dtype=bool)]
    for m in reversed(masks):
        backward.insert(0, (m & backward[0][None, :]).any(axis=1))
    return [f & b for f, b in zip(forward, backward)]


def _neuron_positions(layer_sizes: Sequence[int], x0: float, dx: float) -> list[np.ndarray]:
    """(n, 2) centre coordinates per layer, each layer centred on y = 0."""
    return [
        np.column_stack([np.full(n, x0 + i * dx), (n - 1) / 2.0 - np.arange(n, dtype=float)])
        for i, n in enumerate(layer_sizes)
    ]


def _draw_network(
    ax: Axes,
    pos: list[np.ndarray],
    masks: list[np.ndarray],
    alive: list[np.ndarray],
    radius: float,
) -> None:
    """Draw connections, input arrows and neurons of one network."""
    n_layers = len(pos)
    for layer, m in enumerate(masks):
        for i, j in zip(*np.nonzero(m)):
            useful = alive[layer][i] and alive[layer + 1][j]
            (x1, y1), (x2, y2) = pos[layer][i], pos[layer + 1][j]
            ax.plot(
                [x1, x2],
                [y1, y2],
                color="0.25" if useful else "0.8",
                lw=0.9 if useful else 0.7,
                ls="-" if useful else (0, (3, 2)),
                zorder=1,
            )
    for x, y in pos[0]:
        ax.annotate(
            "",
            xy=(x - radius * 1.1, y),
            xytext=(x - 4.0 * radius, y),
            arrowprops=dict(arrowstyle="-|>", color="0.25", lw=0.9, shrinkA=0, shrinkB=0),
            zorder=1,
        )
    for layer, (p, a) in enumerate(zip(pos, alive)):
        fill = _NAVY if layer in (0, n_layers - 1) else _LIGHT_BLUE
        for (x, y), on in zip(p, a):
            ax.add_patch(
                Circle(
                    (x, y),
                    radius,
                    facecolor=fill if on else "white",
                    edgecolor=fill if on else _DEAD_GREY,
                    lw=1.2,
                    ls="-" if on else (0, (2, 1.5)),
                    zorder=3,
                )
            )


def draw_dense_vs_sparse(
    ax: Axes | None = None,
    seed: int = 0,
    layer_sizes: Sequence[int] = (4, 5, 5, 1),
    keep_fraction: float = 0.45,
) -> Axes:
    """Draw the paper's Fig. 1: a dense MLP, an "Optimization" arrow, a sparse MLP.

    In the sparse network a seeded random subset of ``keep_fraction`` of the
    connections of every layer is kept (at least ``max(n_in, n_out) - 1`` per
    layer, so that narrow layers do not disconnect almost everything). Neurons
    that no longer lie on any input-to-output path (no remaining incoming or
    outgoing connection, directly or through removed neurons) are drawn hollow
    and grey, and kept connections that touch them are drawn dashed in light
    grey. If the random draw cuts every path to the output, one random path is
    added back so the sparse network still computes something.

    Args:
        ax: Axes to draw on; if None, a new figure is made whose size follows
            the drawing (12 x 3.4 inches for the default layer sizes).
        seed: seed of the random sparse network; same seed, same picture.
        layer_sizes: neurons per layer, inputs first; at least two layers.
        keep_fraction: fraction of connections kept per layer, in (0, 1].

    Returns:
        The Axes (its axis is switched off and its aspect set to equal).
    """
    sizes = [int(n) for n in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least two positive sizes, got {tuple(layer_sizes)}")
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")

    rng = np.random.default_rng(seed)
    masks = _sparse_masks(rng, sizes, keep_fraction)
    alive = _alive_neurons(masks, sizes)
    if not alive[-1].any():
        # a schematic of a network that computes nothing would be misleading
        path = [rng.integers(n) for n in sizes]
        for layer, m in enumerate(masks):
            m[path[layer], path[layer + 1]] = True
        alive = _alive_neurons(masks, sizes)
    dense_masks = [np.ones((a, b), dtype=bool) for a, b in zip(sizes[:-1], sizes[1:])]
    dense_alive = [np.ones(n, dtype=bool) for n in sizes]

    # geometry in data units (1 unit = vertical neuron spacing)
    radius, dx = 0.27, 2.0
    width = dx * (len(sizes) - 1)
    half_h = (max(sizes) - 1) / 2.0
    arrow_x0, arrow_x1 = width + 1.0, width + 5.0
    body_h, head_h, head_len = 1.3, 2.3, 1.1
    right_x0 = arrow_x1 + 2.0
    y_caption = -half_h - 0.85
    xlim = (-4.0 * radius - 0.3, right_x0 + width + radius + 0.3)
    ylim = (y_caption - 1.25, max(half_h + radius, head_h / 2) + 0.2)
    if ax is None:
        # a fixed inch-per-unit scale keeps the point-sized text in proportion
        # to the drawing whatever the layer sizes
        scale = 0.57
        _, ax = plt.subplots(figsize=(scale * (xlim[1] - xlim[0]), scale * (ylim[1] - ylim[0])))

    left = _neuron_positions(sizes, 0.0, dx)
    right = _neuron_positions(sizes, right_x0, dx)
    _draw_network(ax, left, dense_masks, dense_alive, radius)
    _draw_network(ax, right, masks, alive, radius)

    # block arrow as in the paper: body with the label, then a wide head
    xh = arrow_x1 - head_len
    ax.add_patch(
        Polygon(
            [
                (arrow_x0, -body_h / 2),
                (xh, -body_h / 2),
                (xh, -head_h / 2),
                (arrow_x1, 0.0),
                (xh, head_h / 2),
                (xh, body_h / 2),
                (arrow_x0, body_h / 2),
            ],
            closed=True,
            facecolor=_ARROW_GREEN,
            edgecolor=_ARROW_EDGE,
            lw=1.2,
            zorder=2,
        )
    )
    ax.text(
        (arrow_x0 + xh) / 2 + 0.25,
        0.0,
        "Optimization",
        ha="center",
        va="center",
        fontsize=12,
        color="black",
        zorder=4,
    )

    n_total = sum(m.size for m in masks)
    n_kept = sum(int(m.sum()) for m in masks)
    n_useful = sum(
        int((m & alive[i][:, None] & alive[i + 1][None, :]).sum()) for i, m in enumerate(masks)
    )
    n_dead = sum(int((~a).sum()) for a in alive)
    caption = dict(ha="center", va="top", fontsize=10, color="0.3", linespacing=1.4)
    ax.text(width / 2, y_caption, f"Dense\n{n_total} connections", **caption)
    sparse_caption = f"Sparse\n{n_kept} of {n_total} connections kept"
    gone = []
    if n_dead:
        gone.append(f"{n_dead} neuron{'s' if n_dead > 1 else ''}")
    if n_kept > n_useful:
        gone.append(f"{n_kept - n_useful} connection{'s' if n_kept - n_useful > 1 else ''}")
    if gone:
        sparse_caption += "\n" + " and ".join(gone) + " effectively gone"
    ax.text(right_x0 + width / 2, y_caption, sparse_caption, **caption)

    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return ax


# ---------------------------------------------------------------------------
# Fig. 2: objective space and dominance cone
# ---------------------------------------------------------------------------


def _hatched_rectangle(xy, w, h, hatch_color) -> Rectangle:
    """Borderless hatched rectangle, with a hatch colour on old and new matplotlib."""
    kwargs = dict(facecolor="none", edgecolor=hatch_color, linewidth=0, hatch="////", zorder=1)
    # matplotlib >= 3.10 separates the hatch colour from the (invisible) edge
    if "hatchcolor" in inspect.signature(Patch.__init__).parameters:
        kwargs["hatchcolor"] = hatch_color
    return Rectangle(xy, w, h, **kwargs)


def draw_objective_space(
    ax: Axes | None = None,
    point: tuple[float, float] = (0.55, 0.5),
    front: np.ndarray | None = None,
) -> Axes:
    """Draw the paper's Fig. 2: objective space with a point and its dominance cone.

    The horizontal axis is the loss :math:`E`, the vertical axis the
    regularizer :math:`\\Omega`. The point :math:`J(\\bar w, y^d)` is projected
    onto both axes by dashed lines, and the hatched lower-left quadrant is the
    cone :math:`J(\\bar w, y^d) - \\mathbb{R}^2_{\\geqq}`: every point in it
    would dominate :math:`J(\\bar w, y^d)` (no worse in both objectives).

    Args:
        ax: Axes to draw on; a new ``6.4 x 4.6`` inch figure is made if None.
        point: ``(E, Omega)`` coordinates of the point, both positive.
        front: optional ``(n, 2)`` array of ``(E, Omega)`` points, drawn as a
            Pareto front curve (sorted by ``E``) in the same coordinates.

    Returns:
        The Axes (its axis is switched off; the arrows are the axes).
    """
    px, py = (float(v) for v in point)
    if px <= 0 or py <= 0:
        raise ValueError(f"point must have positive coordinates, got {point}")
    if front is not None:
        front = np.asarray(front, dtype=float)
        if front.ndim != 2 or front.shape[1] != 2:
            raise ValueError(f"front must be an (n, 2) array, got shape {front.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.6))

    # axis lengths and the cone's cut-off follow the paper's proportions
    # (axes about 1.4 times the point's coordinates, cone cut 0.17 beyond 0)
    x_max, y_max = px, py
    if front is not None and len(front):
        x_max = max(x_max, float(front[:, 0].max()))
        y_max = max(y_max, float(front[:, 1].max()))
    x_end = max(1.4 * px, 1.15 * x_max)
    y_end = max(1.4 * py, 1.15 * y_max)
    mx, my = 0.17 * px, 0.17 * py
    ink = "black"

    # the cone is unbounded; it is cut just past the axes as in the paper
    ax.add_patch(_hatched_rectangle((-mx, -my), px + mx, py + my, "0.45"))
    dash = dict(color=ink, lw=1.0, ls=(0, (5, 3)), zorder=2)
    ax.plot([-mx, px], [py, py], **dash)
    ax.plot([px, px], [-my, py], **dash)

    arrow = dict(arrowstyle="-|>", color=ink, lw=1.8, mutation_scale=16, shrinkA=0, shrinkB=0)
    ax.annotate("", xy=(x_end, 0), xytext=(0, 0), arrowprops=arrow, zorder=3)
    ax.annotate("", xy=(0, y_end), xytext=(0, 0), arrowprops=arrow, zorder=3)
    ax.annotate("$E$", (x_end, 0), xytext=(10, 0), textcoords="offset points", ha="left", va="center", fontsize=15)
    ax.annotate(r"$\Omega$", (0, y_end), xytext=(0, 8), textcoords="offset points", ha="center", va="bottom", fontsize=15)

    if front is not None and len(front):
        f = front[np.argsort(front[:, 0])]
        ax.plot(f[:, 0], f[:, 1], "-o", color=OPTIMIZER_COLORS["smgd"], lw=1.6, ms=4, zorder=4, label="Pareto front")
        ax.legend(loc="upper right", frameon=False)

    ax.plot([px], [py], "o", color=ink, ms=8, zorder=5)
    ax.annotate(
        r"$J(\bar w, y^d)$", (px, py), xytext=(0, 12), textcoords="offset points", ha="center", va="bottom", fontsize=14
    )
    ax.annotate(
        r"$\Omega(\bar w)$", (-mx, py), xytext=(-6, 0), textcoords="offset points", ha="right", va="center", fontsize=14
    )
    ax.annotate(
        r"$E(\bar w, y^d)$", (px, -my), xytext=(0, -8), textcoords="offset points", ha="center", va="top", fontsize=14
    )
    ax.text(
        (px - mx) / 2,
        0.38 * py,
        r"$J(\bar w, y^d) - \mathbb{R}^2_{\geqq}$",
        ha="center",
        va="center",
        fontsize=14,
        zorder=4,
        bbox=dict(boxstyle="square,pad=0.35", facecolor="white", edgecolor="none"),
    )

    ax.set_xlim(-mx - 0.3 * px, x_end + 0.12 * px)
    ax.set_ylim(-my - 0.3 * py, y_end + 0.15 * py)
    ax.set_axis_off()
    return ax


# ---------------------------------------------------------------------------
# Data overviews (notebook 02)
# ---------------------------------------------------------------------------


def image_grid(x, y, class_names, per_class=6, seed=0, title=None):
    """A grid with ``per_class`` random images of every class (one row per class).

    Images are min-max scaled per image, so z-scored CIFAR images display correctly.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    # Before any axes are made: no more images per class than the smallest class has.
    check_int("per_class", per_class, minimum=1, maximum=int(counts.min()))
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.9),
                             squeeze=False)
    for row, c in enumerate(classes):
        picks = rng.choice(np.flatnonzero(y == c), per_class, replace=False)
        for col, i in enumerate(picks):
            img = x[i].astype("float32")
            img = (img - img.min()) / (img.max() - img.min() + 1e-12)
            ax = axes[row, col]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout(pad=0.2)
    return fig


def class_counts(y_train, y_test, class_names, ax=None, title=None):
    """Bar chart of images per class in the training and test sets."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    n = len(class_names)
    positions = np.arange(n)
    ax.bar(positions - 0.2, np.bincount(y_train, minlength=n), width=0.4, label="train")
    ax.bar(positions + 0.2, np.bincount(y_test, minlength=n), width=0.4, label="test")
    ax.set_xticks(positions)
    ax.set_xticklabels(class_names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("images")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------
# Training curves (notebook 03 and later)
# ---------------------------------------------------------------------------


def _titled(fig, title, fontsize=None):
    """``fig.suptitle`` wrapped to the figure's width. The title names the data as the caller's
    results were made on it (``helpers.sweep.dataset_label``), never this machine's data file."""
    if not title:
        return
    size = fontsize or plt.rcParams["figure.titlesize"]
    size = size if isinstance(size, (int, float)) else 12
    width = max(40, int(fig.get_figwidth() * 72 / (0.55 * size)))
    fig.suptitle(textwrap.fill(title, width), fontsize=fontsize)


def _epoch_axis(ax):
    """Epochs are whole numbers: integer ticks only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _accuracy_limits(ax, values, ylim):
    """``ylim`` zooms in on high accuracies; when it would clip a plotted value (epoch 0 is near
    chance), switch to a logit scale that shows everything and still spreads 0.95-0.999 apart."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    low = float(values.min()) if values.size else ylim[0]
    if low >= ylim[0]:
        ax.set_ylim(*ylim)
    elif 0 < low and ylim[1] <= 1.001 and values.max() <= 1:  # a training accuracy of 1.0 sits on the top edge
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        ax.set_yscale("logit")
        ax.set_ylim(low * 0.8, min(0.9995, 1 - (1 - float(values.max())) * 0.5))
        ax.yaxis.set_major_locator(FixedLocator([0.1, 0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return True
    else:
        ax.set_ylim(low - 0.02 * (ylim[1] - low), ylim[1])
    return False


def _band_lineplot(ax, frame, y, hue_order, linestyle="-", label_suffix="", legend=True):
    """Mean over seeds as a line, min-max over seeds as a band, one colour per optimizer."""
    for name in hue_order:
        sub = frame[frame["optimizer"] == name]
        if sub.empty or sub[y].isna().all():
            continue
        stats = sub.groupby("epoch")[y].agg(["mean", "min", "max"])
        ax.plot(stats.index, stats["mean"], linestyle, color=color(name),
                label=(label(name) + label_suffix) if legend else None)
        if sub["seed"].nunique() > 1:
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color(name), alpha=0.15, lw=0)


def plot_train_test(frame, train, test, ylabel, itp_values=(True, False), hue_order=None, reference=None,
                    title="", ylim=None, logy=False, reference_label=None):
    """One panel per ITP setting: ``train`` solid and ``test`` dotted per optimizer, per epoch.

    ``frame`` is ``helpers.sweep.history_frame(results)``; epoch 0 is the state before training
    and is never clipped (see ``_accuracy_limits``). ``reference`` is drawn as a labelled dashed
    line (``reference_label``, default "paper: <value>").
    """
    hue_order = hue_order or list(dict.fromkeys(frame["optimizer"]))
    itp_values = [v for v in itp_values if v in set(frame["itp"])]
    columns = [c for c in (train, test) if c in frame]
    if ylim:  # on a logit axis an accuracy of exactly 1 lies at infinity: draw it on the top edge
        frame = frame.assign(**{c: frame[c].clip(upper=0.9995) for c in columns})
    fig, axes = plt.subplots(1, len(itp_values), figsize=(6.2 * len(itp_values), 4), squeeze=False, sharey=True)
    for ax, itp in zip(axes[0], itp_values):
        sub = frame[frame["itp"] == itp]
        if train in sub:
            _band_lineplot(ax, sub, train, hue_order, "-", " train")
        _band_lineplot(ax, sub, test, hue_order, ":", " test")
        if reference is not None:
            ax.axhline(reference, color="0.5", ls="--", lw=1, label=reference_label or f"paper: {reference:g}")
        ax.set_title(f"{'with' if itp else 'without'} ITP")
        _epoch_axis(ax)
        if logy:
            ax.set_yscale("log")
    logit = False
    if ylim:
        logit = _accuracy_limits(axes[0, 0], frame[frame["itp"].isin(itp_values)][columns].to_numpy().ravel(), ylim)
    axes[0, 0].set_ylabel(ylabel + (" (logit scale)" if logit else ""))
    axes[0, -1].legend(fontsize=8, ncol=2)
    _titled(fig, title)
    fig.tight_layout()
    return fig


def plot_weights_c2(frame, reference=None, title=""):
    """Epoch-mean weight c2 of the L1 objective for the multi-objective runs (log scale)."""
    sub = frame.dropna(subset=["c2"]) if "c2" in frame else frame.iloc[:0]
    itp_values = [v for v in (True, False) if v in set(sub["itp"])]
    fig, axes = plt.subplots(1, max(1, len(itp_values)), figsize=(6.2 * max(1, len(itp_values)), 3.8),
                             squeeze=False, sharey=True)
    for ax, itp in zip(axes[0], itp_values):
        part = sub[sub["itp"] == itp].copy()
        part["c2"] = part["c2"].astype(float)
        _band_lineplot(ax, part, "c2", list(dict.fromkeys(part["optimizer"])))
        if reference is not None:
            ax.axhline(reference, color="0.5", ls="--", lw=1, label=f"baselines' $\\lambda_d$ = {reference:g}")
        ax.set_yscale("log")
        _epoch_axis(ax)
        ax.set_title(f"{'with' if itp else 'without'} ITP")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("epoch mean of $c_2$")
    _titled(fig, title)
    fig.tight_layout()
    return fig


# The paper's MNIST reference lines (0.989, 95.6%, 2,107 / 300 / 170) are lines of the original code's
# plots, not numbers of the paper's text: every figure names them so.
ORIGINAL_REFERENCE_LABEL = "the original code's reference line"


def plot_nonzeros(frame, layer_sizes, references=None, itp=True, title=""):
    """Nonzero kernel weights of every dense layer per epoch (one panel per layer)."""
    sub = frame[frame["itp"] == itp]
    layers = list(layer_sizes)
    fig, axes = plt.subplots(1, len(layers), figsize=(max(4.6 * len(layers), 9), 3.8), squeeze=False)
    order = list(dict.fromkeys(sub["optimizer"]))
    for ax, layer_name in zip(axes[0], layers):
        _band_lineplot(ax, sub, f"nnz/{layer_name}", order)
        if references and layer_name in references:
            ax.axhline(references[layer_name], color="0.5", ls="--", lw=1, label=ORIGINAL_REFERENCE_LABEL)
        ax.set_ylim(0, layer_sizes[layer_name] * 1.05)
        ax.set_title(f"{layer_name} ({layer_sizes[layer_name]:,} weights)")
        _epoch_axis(ax)
    axes[0, 0].set_ylabel("nonzero weights")
    axes[0, -1].legend(fontsize=8)
    _titled(fig, title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Pareto fronts (notebooks 04 and 05)
# ---------------------------------------------------------------------------


def plot_front(ax, x, y, lambdas, nondominated=None, vmax=None, xlabel="", ylabel="", annotate=False):
    """Scatter of objective points coloured by lambda2 on a grayscale bar (black = 0), as the
    paper's Fig. 4; non-dominated points circled in red. Returns the scatter (for a colorbar)."""
    x, y, lambdas = (np.asarray(v, dtype=float) for v in (x, y, lambdas))
    vmax = vmax if vmax is not None else float(lambdas.max()) or 1.0
    scatter = ax.scatter(x, y, c=lambdas, cmap="gray", vmin=0.0, vmax=vmax, s=36, edgecolors="0.3",
                         linewidths=0.5, zorder=3)
    if nondominated is not None:
        nd = np.asarray(nondominated, dtype=bool)
        order = np.argsort(x[nd])
        ax.plot(x[nd][order], y[nd][order], "-", color="tab:red", lw=1, zorder=2)
        ax.scatter(x[nd], y[nd], s=90, facecolors="none", edgecolors="tab:red", linewidths=1.2, zorder=4,
                   label="non-dominated")
        ax.legend(fontsize=8, loc="upper right")
    if annotate:
        for xi, yi, li in zip(x, y, lambdas):
            ax.annotate(f"{li:.2g}", (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return scatter


SCALARIZATION_LABELS = {"separate": "MAdam separate streams (published code)",
                        "joint": "MAdam joint stream (Adam on the weighted sum)"}


def plot_front_on_axes(ax, x, y, lambdas, xlim, ylim, vmax, xlabel="", ylabel=""):
    """Fig. 4-style scatter on fixed axes (the paper's): points outside the axes are drawn as
    open triangles on the edge they cross and counted in a note, never silently dropped.
    Returns the scatter (for a colorbar)."""
    x, y, lambdas = (np.asarray(v, dtype=float) for v in (x, y, lambdas))
    inside = (x >= xlim[0]) & (x <= xlim[1]) & (y >= ylim[0]) & (y <= ylim[1])
    scatter = ax.scatter(x[inside], y[inside], c=lambdas[inside], cmap="gray", vmin=0.0, vmax=vmax, s=30,
                         edgecolors="0.3", linewidths=0.5, zorder=3)
    if (~inside).any():
        cx, cy = np.clip(x[~inside], *xlim), np.clip(y[~inside], *ylim)
        ax.scatter(cx, cy, marker="^", s=34, c=lambdas[~inside], cmap="gray", vmin=0.0, vmax=vmax,
                   edgecolors="tab:red", linewidths=0.8, zorder=4, clip_on=False)
        ax.text(0.98, 0.97, f"{int((~inside).sum())} of {len(x)} points off the axes\n"
                f"(x {x[~inside].min():.3g}-{x[~inside].max():.3g}, y {y[~inside].min():,.0f}-{y[~inside].max():,.0f})",
                transform=ax.transAxes, ha="right", va="top", fontsize=7, color="tab:red")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return scatter


def fig4_at_paper_axes(grid, lambda_max, score="test", title=""):
    """Fig. 4 (a) and (b) at the paper's axes, one row per scalarization in ``grid`` (notebook 04's
    table), for the runs with lambda2 <= ``lambda_max``, grey scale 0 (black) to ``lambda_max``."""
    scalarizations = list(dict.fromkeys(grid.scalarization))
    fig, axes = plt.subplots(len(scalarizations), 2, figsize=(11.5, 4.7 * len(scalarizations)), squeeze=False)
    accuracy = f"{score}_acc"
    for row, scalarization in zip(axes, scalarizations):
        g = grid[(grid.scalarization == scalarization) & (grid.lambda2 <= lambda_max * (1 + 1e-9))]
        s = plot_front_on_axes(row[0], g[f"{score}_ce"], g.l1_dense, g.lambda2, FIG4_AXES["a"]["x"],
                               FIG4_AXES["a"]["y"], lambda_max, f"cross-entropy ({score})",
                               "$\\ell_1$ of the dense weights")
        plot_front_on_axes(row[1], g[accuracy], g.nnz_dense, g.lambda2, FIG4_AXES["b"]["x"], FIG4_AXES["b"]["y"],
                           lambda_max, f"accuracy ({score})", "nonzero dense weights ($\\ell_0$)")
        label_ = SCALARIZATION_LABELS.get(scalarization, scalarization)
        row[0].set_title(f"(a) {label_}, {len(g)} weightings", fontsize=9)
        row[1].set_title(f"(b) {label_}", fontsize=9)
        fig.colorbar(s, ax=row, label="$\\lambda_2$", fraction=0.025, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def fig4_tail_at_paper_axes(grid, dots=None, scale_points=None, lambda_max=9e-4, scalarization="joint",
                            score="test", title=""):
    """Every point of ``scalarization``'s front in ``grid`` on the paper's Fig. 4 axes: lambda2 <=
    ``lambda_max`` on the paper's grey scale (black 0 to white ``lambda_max``), the tail beyond it
    white with a rim coloured by log lambda2 (second colour bar), points off the axes (the empty
    networks) as triangles on the edge, counted. ``dots``: the paper's digitised dots
    (``fig4_digitise.digitise_fig4``), drawn as red crosses. ``scale_points``
    (``experiments.fig4_scale_points``): a third panel, our lambda2 at the same l1 / nonzeros
    against the paper's lambda read from each dot's grey, with k = 1 and the median k."""
    from matplotlib.colors import LogNorm

    g = grid[grid.scalarization == scalarization]
    paper_range = g.lambda2 <= lambda_max * (1 + 1e-9)
    tail = g[~paper_range]
    panels = 3 if scale_points is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels + 1.6, 5.0), squeeze=False, layout="constrained")
    axes = list(axes[0])
    specs = (("a", f"{score}_ce", "l1_dense", f"cross-entropy ({score})", "$\\ell_1$ of the dense weights"),
             ("b", f"{score}_acc", "nnz_dense", f"accuracy ({score})", "nonzero dense weights ($\\ell_0$)"))
    norm = LogNorm(vmin=max(float(tail.lambda2.min()), lambda_max) if len(tail) else lambda_max,
                   vmax=float(tail.lambda2.max()) if len(tail) else 10 * lambda_max)
    for ax, (panel, x, y, xlabel, ylabel) in zip(axes, specs):
        (x0, x1), (y0, y1) = FIG4_AXES[panel]["x"], FIG4_AXES[panel]["y"]
        grey = plot_front_on_axes(ax, g[paper_range][x], g[paper_range][y], g[paper_range].lambda2, (x0, x1), (y0, y1),
                                  lambda_max, xlabel, ylabel)
        if len(tail):
            tx, ty = tail[x].to_numpy(float), tail[y].to_numpy(float)
            inside = (tx >= x0) & (tx <= x1) & (ty >= y0) & (ty <= y1)
            ax.scatter(tx[inside], ty[inside], s=48, c=tail.lambda2[inside], cmap="plasma", norm=norm, zorder=4,
                       linewidths=0)
            ax.scatter(tx[inside], ty[inside], s=14, color="white", zorder=5, linewidths=0)
            if (~inside).any():
                ax.scatter(np.clip(tx[~inside], x0, x1), np.clip(ty[~inside], y0, y1), marker="^", s=34,
                           c=tail.lambda2[~inside], cmap="plasma", norm=norm, edgecolors="tab:red", linewidths=0.8,
                           zorder=4, clip_on=False)
                left = panel == "b"
                ax.text(0.02 if left else 0.98, 0.55, f"tail: {int((~inside).sum())} of {len(tx)} off the axes\n"
                        f"(λ2 ≥ {tail.lambda2[~inside].min():.3g}: {y} {ty[~inside].min():,.0f}-{ty[~inside].max():,.0f})",
                        transform=ax.transAxes, ha="left" if left else "right", va="center", fontsize=7,
                        color="tab:red")
        if dots is not None and panel in dots:
            ax.scatter(dots[panel][x.replace(score, "test")], dots[panel][y], marker="x", s=16, color="tab:red",
                       linewidths=0.8, zorder=6, label=f"paper's Fig. 4({panel}), digitised ({len(dots[panel])} dots)")
            ax.legend(fontsize=7, loc="upper right" if panel == "a" else "upper left",
                      bbox_to_anchor=(1.0, 0.86) if panel == "a" else (0.0, 1.0))
        ax.set_title(f"({panel}) {SCALARIZATION_LABELS.get(scalarization, scalarization)}: {len(g)} weightings",
                     fontsize=8)
    fig.colorbar(grey, ax=axes[1], label="$\\lambda_2$ (the paper's grey scale)", fraction=0.05, pad=0.01)
    if len(tail):
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="plasma"), ax=axes[1],
                     label=f"$\\lambda_2$ > {lambda_max:g} (tail: white, coloured rim)", fraction=0.05, pad=0.01)
    if scale_points is not None:
        ax = axes[2]
        usable = scale_points[np.isfinite(scale_points.k)]
        for panel, marker in (("a", "o"), ("b", "s")):
            for white, face in ((False, None), (True, "none")):
                part = usable[(usable.panel == panel) & (usable.white == white)]
                if len(part):
                    ax.scatter(part.paper_lambda, part.our_lambda2, marker=marker, s=22, color="tab:blue" if panel == "a"
                               else "tab:orange", facecolors=face, label=f"panel ({panel}), matched on "
                               f"{'l1' if panel == 'a' else 'nonzeros'}" + (" (white dot: paper λ a lower bound)" if white else ""))
        fit = usable[~usable.white]
        k = float(np.median(fit.k)) if len(fit) else np.nan
        lims = np.array([5e-6, 1e-2])
        ax.plot(lims, lims, color="0.5", lw=1, ls=":", label="k = 1")
        if np.isfinite(k):
            ax.plot(lims, k * lims, color="black", lw=1, label=f"k = {k:.2f} (median, {len(fit)} dots)")
        ax.set_xscale("log"), ax.set_yscale("log"), ax.set_xlim(*lims), ax.set_ylim(*lims)
        ax.set_xlabel("paper's λ (grey of the dot on its colour bar)")
        ax.set_ylabel(f"our λ2 at the same l1 / nonzeros ({scalarization})")
        ax.set_title("λ scale: ours = k × paper", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_lr_ablation(table, reference_accuracy=None, reference_pruned=None, title="", shared=None,
                     columns=("pruned_fraction_dense", "test_acc", "c2_mean"),
                     reference_label=ORIGINAL_REFERENCE_LABEL):
    """The eta0 ablation (notebook 03) against the learning rate on a log axis, one line per
    (optimizer, scalarization); seeds as points, their mean as the line; the paper's reference
    lines dotted, labelled ``reference_label`` (they are lines of the original code's plots, not
    numbers of the paper's text). ``columns``: the panels, any of ``pruned_fraction_dense``
    (drawn in %), ``test_acc``, ``c2_mean`` (log scale). ``shared``: a ``shared_lr_table``, drawn as
    stars (one per optimizer and shared eta0, the single-objective baselines included), so that the
    transition figure shows the original code's shared-eta0 runs beside the ablation."""
    panels = {"pruned_fraction_dense": (100, "dense weights pruned (%)"), "test_acc": (1, "test accuracy"),
              "c2_mean": (1, "epoch-mean $c_2$ (weight of $\\ell_1$)")}
    unknown = [c for c in columns if c not in panels]
    if unknown or not columns:
        raise ValueError(f"columns must be a non-empty list of {', '.join(panels)}; got {list(columns)!r}")
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 4.2), squeeze=False)
    axes = list(axes[0])
    styles = {"separate": "-", "joint": "--"}


    for (optimizer, scalarization), g in table.groupby(["optimizer", "scalarization"], sort=False):
        mean = g.groupby("learning_rate").mean(numeric_only=True).reset_index()
        for ax, column in zip(axes, columns):
            scale = panels[column][0]
            ax.plot(mean.learning_rate, scale * mean[column], styles.get(scalarization, "-"), marker="o",
                    color=color(optimizer), label=method_label(optimizer, scalarization))
            ax.scatter(g.learning_rate, scale * g[column], s=14, color=color(optimizer), alpha=0.5)
    if shared is not None and len(shared):
        for (optimizer, scalarization), g in shared.groupby(["optimizer", "scalarization"], sort=False):
            for ax, column in zip(axes, columns):
                if g[column].notna().any():
                    ax.scatter(g.shared_lr, panels[column][0] * g[column], marker="*", s=110, color=color(optimizer),
                               edgecolors="black", linewidths=0.5, zorder=5,
                               label=f"{method_label(optimizer, scalarization)}, one η0 for all four")
    references = {"pruned_fraction_dense": (None if reference_pruned is None else 100 * reference_pruned,
                                            f"{100 * reference_pruned:.1f}%" if reference_pruned is not None else ""),
                  "test_acc": (reference_accuracy, f"{reference_accuracy}")}
    for ax, column in zip(axes, columns):
        value, text = references.get(column, (None, ""))
        if value is not None:
            ax.axhline(value, color="0.3", ls=":", lw=1, label=f"{text}: {reference_label}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate $\\eta_0$")
        ax.set_ylabel(panels[column][1])
        if column == "c2_mean":
            ax.set_yscale("log")
        if column != "c2_mean":
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_c2_trajectories(results, title=""):
    """Per-epoch min-norm weight c2 and nonzero dense weights of each run (log scales): how the
    L1 objective's weight feeds back on pruning."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for r in results:
        name = f"{label(r.config.optimizer)} {r.config.scalarization}, η0={r.config.learning_rate:g}"
        epochs = r.history["epoch"][1:]
        axes[0].plot(epochs, r.history["c2"][1:], marker=".", label=name)
        nnz = np.sum([v for v in r.history["nnz"].values()], axis=0)
        axes[1].plot(r.history["epoch"], np.maximum(nnz, 1), marker=".", label=name)
    axes[0].set_ylabel("epoch-mean $c_2$")
    axes[1].set_ylabel("nonzero dense weights (0 drawn at 1)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_search_levels(result, score="test", title=""):
    """One panel per level of a weighted-sum search (``pareto.SearchResult``): the history so far
    (black x), the candidates the level starts from (green x) and the new points (red circles),
    in objective space; rows of five levels."""
    n = len(result.levels)
    ncols = min(n, 5)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    seen = [c.point for c in result.history[:2]]
    for level, (ax, (before, new)) in enumerate(zip(axes.flat, result.levels), start=1):
        h, b = np.array(seen), np.array([c.point for c in before])
        ax.scatter(h[:, 0], h[:, 1], marker="x", color="black", s=25, label="history")
        ax.scatter(b[:, 0], b[:, 1], marker="x", color="tab:green", s=40, label="candidates")
        if new:
            p = np.array([c.point for c in new])
            ax.scatter(p[:, 0], p[:, 1], marker="o", facecolors="none", edgecolors="tab:red", s=50, label="new")
        seen += [c.point for c in new]
        ax.set_title(f"level {level}", fontsize=9)
        if level > n - ncols:
            ax.set_xlabel(f"CE ({score})")
        ax.set_yscale("log")
    for row in axes:
        row[0].set_ylabel("$\\ell_1$ (dense)")
    axes[0, ncols - 1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_knee_retraining(knee_runs, title=""):
    """Test accuracy and nonzero dense weights per epoch of the retrained knees, one line per
    distinct run (several searches and rules can pick the same weighting): solid if the clean
    rule picked it, dashed if only the original rule did."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    pickers = {}
    for (method, rule), run in knee_runs.items():
        pickers.setdefault(run.key, (run, []))[1].append((method, rule))
    for run, picked_by in pickers.values():
        frame = run.history_frame()
        style = "-" if any(rule == "max-distance" for _, rule in picked_by) else "--"
        who = "; ".join(f"{method}, {rule}" for method, rule in picked_by)
        axes[0].plot(frame.epoch, frame.test_accuracy, style, label=f"{who} (λ2={run.config.weights[1]:.2g})")
        axes[1].plot(frame.epoch, frame[[c for c in frame.columns if c.startswith("nnz/")]].sum(axis=1), style)
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0.9, 1.0)
    axes[1].set_ylabel("nonzero dense weights")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


SEARCH_MARKERS = {"bisection": "o", "dichotomic": "s", "stochastic": "^", "grid": "x"}
SEARCH_COLORS = {"bisection": "tab:blue", "dichotomic": "tab:orange", "stochastic": "tab:green", "grid": "tab:gray"}


def plot_knees_objective_space(found, knee_runs, score="test", knee_region=None, title=""):
    """Every search's evaluated points (10-epoch candidates) and its knees in objective space.
    A knee is drawn twice, kept apart: a star on its 10-epoch candidate point (filled: clean
    rule, open: original rule) and a diamond where its 30-epoch retraining ends, joined by a line.
    ``knee_region``: the paper's knee as ``{"test_ce": (lo, hi), "l1_dense": (lo, hi)}``."""
    fig, ax = plt.subplots(figsize=(8, 5))
    empty = set()  # weightings whose network is empty (l1 = 0): no place on the log axis
    for method, result in found.items():
        h = result.points()
        empty |= {c.weights for c in result.history if c.point[1] <= 0}
        h = h[h[:, 1] > 0]
        ax.scatter(h[:, 0], h[:, 1], marker=SEARCH_MARKERS[method], s=22, color=SEARCH_COLORS[method], alpha=0.6,
                   label=f"{method}: {len({c.weights for c in result.history})} distinct weightings")
    for (method, rule), run in knee_runs.items():
        candidate = next(c for c in reversed(found[method].history) if c.weights == tuple(run.config.weights))
        retrained = (run.history[f"{score}_ce"][-1], run.summary["l1_dense"])
        if candidate.point[1] <= 0 or retrained[1] <= 0:
            empty.add(candidate.weights)
            continue
        filled = rule == "max-distance"
        ax.plot(*zip(candidate.point, retrained), color=SEARCH_COLORS[method], lw=0.8, alpha=0.7, zorder=2)
        ax.scatter(*candidate.point, marker="*", s=240, edgecolors=SEARCH_COLORS[method], linewidths=1.5,
                   facecolors=SEARCH_COLORS[method] if filled else "none", zorder=3)
        ax.scatter(*retrained, marker="D", s=60, edgecolors=SEARCH_COLORS[method], linewidths=1.2,
                   facecolors=SEARCH_COLORS[method] if filled else "none", zorder=3)
    if knee_region is not None:
        (x0, x1), (y0, y1) = knee_region["test_ce"], knee_region["l1_dense"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.85", zorder=0,
                               label="knee region, inferred from the paper's figure (Fig. 4)"))
    ax.scatter([], [], marker="*", s=160, color="black", label="knee, 10-epoch candidate (filled: clean rule)")
    ax.scatter([], [], marker="D", s=50, color="black", label="the same knee retrained (30 epochs)")
    if empty:
        ax.text(0.99, 0.02, f"not drawn: {len(empty)} weighting(s) whose network is empty ($\\ell_1$ = 0, CE ≈ 2.30), "
                f"e.g. $\\lambda_2$ = {max(w[1] for w in empty):.3g}", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, color="0.3")
    ax.set_yscale("log")
    ax.set_xlabel(f"cross-entropy ({score})")
    ax.set_ylabel("$\\ell_1$ of the dense weights")
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Classic pruning: notebooks 06-09
# ---------------------------------------------------------------------------

PRUNING_STYLES = {"one-shot": "-", "fine-tuned": "--", "global": ":", "iterative": "--", "gradual": "-."}


def _pruning_colors():
    return {"weight": color("global"), "unit": color("uniform"), "l1_unstructured": color("uniform"),
            "l2_structured": color("sgd"), "global_unstructured": color("global"), "gmp": color("gmp")}


def _finish_panels(fig, axes, ylabels, xlabel, title, log_axis, legend_axis):
    """Label a row of panels: y labels, one x label, a log-scaled panel, a legend, the title."""
    for ax, ylabel in zip(axes, ylabels):
        ax.set_ylabel(ylabel)
    axes[log_axis].set_yscale("log")
    for ax in axes:
        ax.set_xlabel(xlabel)
    axes[legend_axis].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_post_training_sweep(sweep, title=""):
    """Notebook 06: test accuracy and loss against k, per method (colour) and variant (style)."""
    colors = _pruning_colors()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for (method, variant), g in sweep.groupby(["method", "variant"], sort=False):
        for ax, column in zip(axes, ("test_acc", "test_loss")):
            ax.plot(g.k, g[column], PRUNING_STYLES[variant], marker="o", ms=3, color=colors[method],
                    label=f"{method}, {variant}")
    return _finish_panels(fig, axes, ("test accuracy", "test loss"), "pruning fraction k (per hidden layer)", title,
                          log_axis=1, legend_axis=0)


def plot_effective_sparsity(one_shot):
    """Notebook 06: effective against nominal sparsity of the one-shot networks, per method."""
    colors = _pruning_colors()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, g in one_shot.groupby("method"):
        ax.plot(g.k, g.effective_sparsity, marker="o", ms=3, color=colors[method], label=method)
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="effective = nominal")
    ax.set_xlabel("nominal k")
    ax.set_ylabel("effective sparsity")
    ax.legend()
    ax.set_title("Nominal vs effective sparsity")
    return fig


def plot_structure_sweep(sweep, title=""):
    """Notebook 07: test accuracy against achieved sparsity per method and schedule."""
    colors = _pruning_colors()
    dense_acc = float(sweep[sweep.method == "dense"].test_acc.iloc[0])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (method, schedule), g in sweep[sweep.method != "dense"].groupby(["method", "schedule"], sort=False):
        ax.plot(g.achieved_sparsity, g.test_acc, PRUNING_STYLES[schedule], marker="o", ms=3, color=colors[method],
                label=f"{method.replace('_', ' ')}, {schedule}")
    ax.axhline(dense_acc, color="0.5", lw=1, label="dense")
    ax.set_xlabel("achieved sparsity (fraction of zero weights)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title, 100), fontsize=9)  # a long protocol line fits the axes
    return fig


def plot_per_layer_sparsity(per_layer, target, title=""):
    """Notebook 07: per-layer sparsity of each one-shot method; the legend sits beside the bars."""
    colors = _pruning_colors()
    methods = list(per_layer)
    fig, ax = plt.subplots(figsize=(9.5, 3.8))
    pd.DataFrame(per_layer).plot.bar(ax=ax, rot=0, color=[colors[m.replace(" ", "_")] for m in methods])
    ax.set_ylabel(f"sparsity at target {target}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "Per-layer sparsity, one-shot: global pruning spends the budget where weights are small",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_rl_training(histories, title=""):
    """Notebook 08: the RL search per budget: reward (and best feasible), cost / budget, multiplier.

    ``histories`` maps a budget ``(kind, value)`` to its search history (rows of ``search``)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ((kind, value), rows), c in zip(histories.items(), plt.cm.viridis(np.linspace(0.0, 0.8, len(histories)))):
        history = pd.DataFrame(rows)
        if history.empty:
            continue
        label_ = f"{kind} <= {value}"
        axes[0].plot(history["update"], history.reward_mean, color=c, label=label_)
        axes[0].plot(history["update"], history.best_feasible_reward, color=c, ls=":", lw=1)
        axes[1].plot(history["update"], history.cost_mean / value, color=c, label=label_)
        axes[2].plot(history["update"], history.multiplier, color=c, label=label_)
    axes[1].axhline(1.0, color="0.4", ls="--", lw=1)
    return _finish_panels(fig, axes, ("reward (eval accuracy)\n(dotted: best feasible so far)", "mean cost / budget",
                                      "multiplier $\\nu$"), "policy update", title, log_axis=1, legend_axis=1)


def plot_allocation(results, title=""):
    """Notebook 08: fraction of weights (or, for a filter-pruned network, of channels) each
    method keeps per layer or group, one panel per budget; the legend sits above the panels,
    clear of the bars.

    ``results`` maps a budget ``(kind, value)`` to ``prune_to_budget``'s result."""
    long_names = max(len(str(name)) for result in results.values() for name in result["layers"]) > 12
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.6 if long_names else 3.6),
                             squeeze=False)
    for ax, ((kind, value), result) in zip(axes[0], results.items()):
        kept = pd.DataFrame({label(r["method"]): r["kept_per_layer"] for r in result["rows"]}, index=result["layers"])
        kept.plot.bar(ax=ax, color=[color(r["method"]) for r in result["rows"]], width=0.8, legend=False)
        ax.set_title(f"{kind} <= {value}", fontsize=10)
        unit = "channels" if result.get("granularity") == "filter" else "weights"
        ax.set_ylabel(f"fraction of {unit} kept")
        ax.set_ylim(0, 1)
        if long_names:  # slanted, anchored at their bar
            plt.setp(ax.get_xticklabels(), rotation=50, ha="right", rotation_mode="anchor", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.93))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def format_mean_std(mean, std, digits, sign=""):
    """``"m ± s"``; ``"m ± –"`` where ``std`` is NaN (one seed: no spread was measured, which is
    not a spread of 0). ``sign="+"`` writes the mean's sign always."""
    return f"{mean:{sign}.{digits}f} ± " + ("–" if np.isnan(std) else f"{std:.{digits}f}")


def plot_accuracy_vs_budget(table, methods, dense_acc, titles):
    """Notebook 08: test accuracy per budget (a category, not a continuum: grouped points, no
    lines across budgets), hollow before and filled after the equal fine-tune, one panel per
    model with its own budgets; over several seeds the mean, with the seeds' range as an error
    bar. ``dense_acc`` and ``titles`` map model -> dense accuracy (mean) / panel title."""
    from matplotlib.lines import Line2D

    models_ = list(dict.fromkeys(table.model))
    fig, axes = plt.subplots(1, len(models_), figsize=(6.5 * len(models_), 4.2), squeeze=False)
    width = 0.6 / max(1, len(methods))
    for ax, name in zip(axes[0], models_):
        part = table[table.model == name]
        budgets = list(dict.fromkeys(zip(part.budget_kind, part.budget)))
        x = np.arange(len(budgets))
        stats = part.groupby(["budget_kind", "budget", "method"]).agg(
            **{f"{stage}_{f}": (f"test_acc_{stage}_finetune", f) for stage in ("before", "after")
               for f in ("mean", "min", "max")})
        for i, method in enumerate(methods):
            offset = (i - (len(methods) - 1) / 2) * width
            rows = stats.loc[[(k, v, method) for k, v in budgets]]
            for stage, face in (("before", "none"), ("after", color(method))):
                mean = rows[f"{stage}_mean"].to_numpy()
                ax.errorbar(x + offset, mean, yerr=[mean - rows[f"{stage}_min"], rows[f"{stage}_max"] - mean],
                            fmt="none", ecolor=color(method), elinewidth=0.8, capsize=2, zorder=2)
                ax.scatter(x + offset, mean, s=36, marker="o", facecolors=face, edgecolors=color(method), zorder=3)
            ax.vlines(x + offset, rows.before_mean, rows.after_mean, color=color(method), lw=1, zorder=2)
        ax.axhline(dense_acc[name], color="0.6", lw=1)
        ax.set_xticks(x, [f"{k} <= {v}" for k, v in budgets])
        ax.set_xlim(-0.5, len(budgets) - 0.5)
        ax.set_xlabel("budget (fraction of the dense network's cost kept)")
        ax.set_ylabel("test accuracy" + (f" (mean, range over {part.seed.nunique()} seeds)"
                                         if part.seed.nunique() > 1 else ""))
        ax.set_title(textwrap.fill(titles[name], 80), fontsize=9)  # a protocol line per panel: wrapped, or they overlap
    handles = [Patch(color=color(m), label=label(m)) for m in methods] + [
        Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label="before fine-tune"),
        Line2D([], [], ls="", marker="o", color="0.3", label="after fine-tune"),
        Line2D([], [], color="0.6", lw=1, label="dense network")]
    fig.tight_layout()
    fig.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def plot_training_overhead(overhead):
    """Notebook 09: seconds per epoch (median) per framework and method, with min-max bars over
    the epochs (``epoch_seconds``) and the ratio to the plain run of the same optimizer."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    labels_ = overhead.framework + ": " + overhead.method
    epochs = [np.array(str(s).split(), dtype=float) for s in overhead.epoch_seconds]
    low = overhead.seconds_per_epoch - [e.min() for e in epochs]
    high = [e.max() for e in epochs] - overhead.seconds_per_epoch
    bars = ax.barh(labels_, overhead.seconds_per_epoch, xerr=[low, high], error_kw=dict(lw=1, capsize=2, ecolor="0.2"),
                   color=["0.35" if f == "keras3" else color("tfmot") for f in overhead.framework])
    for bar, ratio, top in zip(bars, overhead.ratio_to_plain, [e.max() for e in epochs]):
        ax.text(top, bar.get_y() + bar.get_height() / 2, f" x{ratio:.2f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per epoch, median and min-max over epochs (LeNet-5, MNIST, batch 32)")
    ax.set_title("Training cost; ratio to the plain run of the same framework and optimizer", fontsize=10)
    fig.tight_layout()
    return fig


FRONTIER_COLORS = {"SMGD+ITP": "smgd", "MAdam+ITP": "madam", "Adam+L1+ITP": "adam", "GMP (ours, Keras 3)": "gmp",
                   "tfmot GMP (tf_keras)": "tfmot"}


def plot_frontier(frontier, title=None):
    """Notebook 09: test accuracy against dense sparsity of every benchmarked run."""
    if title is None:
        seeds = sorted(frontier.seed.unique())
        title = f"LeNet-5 / MNIST, 30 epochs, batch 32, seeds {seeds[0]}-{seeds[-1]}"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for method, g in frontier.groupby("method", sort=False):
        ax.scatter(100 * g.dense_sparsity, g.test_acc,
                   color=color(FRONTIER_COLORS[method]) if method in FRONTIER_COLORS else "0.5", label=method,
                   s=30, edgecolor="k", linewidth=0.3)
    ax.set_xlabel("dense sparsity (%)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_inference(inference):
    """Notebook 09: latency ratio against FLOP ratio (the ideal), batch 1 and batch 256."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, batch in zip(axes, ("b1", "b256")):
        for (network, variant), g in inference[inference.variant != "dense"].groupby(["network", "variant"], sort=False):
            ax.plot(g.flop_ratio, g[f"latency_{batch}_ratio"], "o-" if variant == "compacted" else "x--",
                    label=f"{network}, {variant}")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="ideal (latency = FLOP ratio)")
        ax.set_xlabel("FLOP ratio (pruned / dense)")
        ax.set_ylabel(f"latency ratio, batch {batch[1:]}")
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0, 1.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Measured latency against the FLOP ideal", fontsize=10)
    fig.tight_layout()
    return fig


def plot_architectures(architectures):
    """Notebook 09: keras.applications models and a Transformer block, compacted after global
    filter / unit+head pruning: measured latency ratio against the FLOP ratio, batch 1 and 32,
    one marker per model, one colour per (backend, threads) setting."""
    done = architectures[architectures.compacted.astype(bool)]
    settings = list(dict.fromkeys(zip(done.backend, done.threads.astype(str))))
    markers = dict(zip(done.model.unique(), "osD^vP*X"))
    colours = dict(zip(settings, sns.color_palette("deep", len(settings))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, batch in zip(axes, (1, 32)):
        for (model, backend, threads), g in done.groupby(["model", "backend", done.threads.astype(str)], sort=False):
            ax.plot(g.flop_ratio, g[f"latency_b{batch}_ratio"], marker=markers[model], ls="-", lw=0.8,
                    color=colours[(backend, threads)], label=f"{model}, {backend} {threads}")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
        ax.plot([0, 1 / 1.3], [0, 1], color="0.6", lw=1, ls="--")
        ax.text(0.98, 0.93, "latency = FLOP ratio", ha="right", fontsize=7, color="0.4", rotation=0)
        ax.set_xlabel("FLOP ratio (compacted / dense)")
        ax.set_ylabel(f"latency ratio, batch {batch}")
        ax.set_xlim(0, 1.05)
        ax.set_ylim(0, 1.6)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=6, ncol=2, loc="upper left")
    fig.suptitle("Compacted keras.applications models: measured latency against the FLOP ideal "
                 "(dotted: equal; dashed: 1.3x the FLOP ratio)", fontsize=10)
    fig.tight_layout()
    return fig

"""Readable figures: panel titles that carry a whole protocol line must not run into each other."""
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from helpers import plotting  # noqa: E402

# Notebook 08's three panel titles, as `experiments.budget_protocol` writes them.
TITLES = {
    "lenet5": "MNIST, pre-trained 10 epochs, dense test accuracy 0.9897 ± 0.0004 (seeds 0, 1, 2)",
    "vgg": "CIFAR-10 (jpeg-q75 stand-in), pre-trained 10 epochs on 10,000 images, dense test accuracy "
           "0.6653 ± 0.0134 (seeds 0, 1, 2)",
    "resnet20": "CIFAR-10 (jpeg-q75 stand-in), pre-trained 30 epochs (random crops and flips, cosine rate), "
                "dense test accuracy 0.8405 ± 0.0032 (seeds 0, 1, 2)",
}


def budget_table():
    rows = [dict(model=model, budget_kind="parameters", budget=budget, method=method, seed=seed,
                 test_acc_before_finetune=0.1 + 0.01 * seed, test_acc_after_finetune=0.5 + 0.01 * seed)
            for model in TITLES for budget in (0.1, 0.2) for method in ("rl", "uniform", "global")
            for seed in range(3)]
    return pd.DataFrame(rows)


def test_accuracy_vs_budget_panel_titles_stay_apart_and_inside_the_figure():
    fig = plotting.plot_accuracy_vs_budget(budget_table(), ["rl", "uniform", "global"],
                                           {m: 0.9 for m in TITLES}, TITLES)
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    figure_box = fig.bbox
    for box in boxes:
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1
    for left, right in itertools.combinations(sorted(boxes, key=lambda b: b.x0), 2):
        assert left.x1 <= right.x0, "two panel titles overlap"
    plt.close(fig)

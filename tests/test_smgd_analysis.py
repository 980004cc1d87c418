"""Notebook 03's learning-rate analysis helpers on hand-made runs (no training): the reference
crossings, the shared-eta0 table, the findings text and the transition figure."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import experiments, plotting  # noqa: E402
from helpers.paper import MNIST_REFERENCE_NONZEROS  # noqa: E402
from helpers.run_config import RunConfig  # noqa: E402

LAYERS = ("denselayer1", "denselayer2", "denselayer3")


def fake_run(optimizer, lr, nnz, seed=0, scalarization="separate", c2=True, test_acc=0.99):
    """A run record with the fields the helpers read: ``nnz`` maps layer -> per-epoch nonzeros."""
    epochs = len(next(iter(nnz.values())))
    config = RunConfig(dataset="mnist", optimizer=optimizer, scalarization=scalarization, itp=True,
                       epochs=epochs - 1, seed=seed, learning_rate=lr)
    history = {"epoch": list(range(epochs)), "nnz": nnz}
    if c2:
        history["c2"] = [None] + [1e-4] * (epochs - 1)
    last = {layer: values[-1] for layer, values in nnz.items()}
    summary = {"test_acc": test_acc, "nnz_dense": sum(last.values()),
               "pruned_fraction_dense": 1 - sum(last.values()) / 58_920,
               **{f"nnz/{layer}": v for layer, v in last.items()}}
    return SimpleNamespace(config=config, history=history, summary=summary)


def test_reference_crossings_first_epoch_below_each_line():
    assert MNIST_REFERENCE_NONZEROS == {"denselayer1": 2_107, "denselayer2": 300, "denselayer3": 170}
    run = fake_run("adam", 1e-3, {"denselayer1": [47_541, 5_000, 2_107, 2_106, 1_000],  # 2,107 is not below
                                  "denselayer2": [10_000, 299, 500, 290, 280],  # below at 1, back up, below again
                                  "denselayer3": [840, 840, 840, 840, 840]}, c2=False)  # never
    never = fake_run("smgd", 1e-2, {layer: [10_000] * 5 for layer in LAYERS})
    table = experiments.reference_crossings([run, never, run])  # the repeated run is listed once
    assert len(table) == 2
    row = table.iloc[0]
    assert (row["epoch_below/denselayer1"], row["epoch_below/denselayer2"]) == (3, 1)
    assert pd.isna(row["epoch_below/denselayer3"]) and pd.isna(row["epoch_below/all"])
    assert table.iloc[1][[f"epoch_below/{layer}" for layer in LAYERS]].isna().all()
    both = experiments.reference_crossings([run], references={"denselayer1": 2_107, "denselayer2": 300})
    assert both.iloc[0]["epoch_below/all"] == 3
    assert list(table.columns) == ["optimizer", "scalarization", "learning_rate", "seed", "itp", "epochs",
                                   *[f"epoch_below/{layer}" for layer in LAYERS], "epoch_below/all",
                                   "nnz_dense", "test_acc"]


def test_shared_lr_table_has_the_ablation_columns_plus_shared_lr():
    nnz = {layer: [100, 50] for layer in LAYERS}
    runs = [fake_run(o, lr, nnz, c2=o in ("smgd", "madam")) for lr in (1e-2, 1e-3) for o in ("adam", "smgd", "madam", "sgd")]
    shared = experiments.shared_lr_table(runs)
    ablation = experiments.lr_ablation_table([r for r in runs if r.config.optimizer in ("smgd", "madam")])
    assert list(shared.columns) == ["shared_lr"] + list(ablation.columns)
    assert list(shared.columns[1:8]) == ["optimizer", "scalarization", "learning_rate", "seed", "test_acc",
                                         "pruned_fraction_dense", "nnz_dense"]
    assert list(shared.shared_lr) == [1e-3] * 4 + [1e-2] * 4
    assert list(shared.optimizer[:4]) == ["smgd", "madam", "sgd", "adam"]  # the paper's order
    assert shared[shared.optimizer == "adam"].c2_mean.isna().all()  # baselines record no c2
    assert experiments.shared_lr_table([]).columns[0] == "shared_lr"


def test_shared_lr_comparison_one_rate_for_all_four():
    configs = experiments.shared_lr_comparison((1e-3, 1e-2))
    assert len(configs) == 8 and all(c.itp and c.seed == 0 for c in configs)
    for lr in (1e-3, 1e-2):
        assert sorted(c.optimizer for c in configs if c.learning_rate == lr) == ["adam", "madam", "sgd", "smgd"]
    with pytest.raises(ValueError):
        experiments.shared_lr_comparison(())


def _tables():
    alive = {layer: [1_000, 900] for layer in LAYERS}
    empty = {layer: [1_000, 0] for layer in LAYERS}
    runs = [fake_run("smgd", 3e-3, empty, test_acc=0.1), fake_run("smgd", 1e-2, alive),
            fake_run("madam", 1e-3, alive, scalarization="joint"), fake_run("madam", 3e-3, alive, scalarization="joint")]
    shared_runs = [fake_run(o, 1e-3, alive, c2=o in ("smgd", "madam")) for o in ("smgd", "madam", "sgd", "adam")]
    return (experiments.lr_ablation_table(runs), experiments.shared_lr_table(shared_runs),
            experiments.reference_crossings(runs + shared_runs))


def test_findings_and_transitions_follow_the_tables():
    ablation, shared, crossings = _tables()
    steps = experiments.collapse_transitions(ablation)
    assert steps.iloc[0].empty_up_to == 3e-3 and steps.iloc[0].next_rate == 1e-2
    text = experiments.lr_ablation_findings(ablation, shared, crossings)
    assert "Not at any rate tried" in text and "factor 3.3" in text and "η0 = 1e-3" in text
    assert "empty network" in text


def test_plot_lr_ablation_with_shared_runs_and_reference_label():
    ablation, shared, _ = _tables()
    fig = plotting.plot_lr_ablation(ablation, reference_accuracy=0.989, reference_pruned=0.956, shared=shared,
                                    columns=("pruned_fraction_dense", "test_acc"), title="t")
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "95.6%: the original code's reference line" in labels
    assert any("one η0 for all four" in label for label in labels)
    assert len(plotting.plot_lr_ablation(ablation).axes) == 3  # the three-panel ablation figure still works
    with pytest.raises(ValueError):
        plotting.plot_lr_ablation(ablation, columns=("nonsense",))
    matplotlib.pyplot.close("all")


def test_cached_runs_trains_nothing():
    assert experiments.cached_runs([]) == ([], [])


def test_comparison_table_shows_no_spread_for_one_seed():
    import pandas as pd

    from helpers import experiments

    summary = pd.DataFrame({"optimizer": ["smgd", "smgd", "sgd"], "itp": [True, True, True], "seed": [0, 1, 0],
                            "test_acc": [0.9, 0.8, 0.7], "test_ce": [0.1, 0.2, 0.3], "pruned_fraction_dense": [0.5] * 3})
    for column in ("nnz_dense", "epochs_to_target"):
        summary[column] = 1
    table = experiments.comparison_table(summary)
    assert table.loc[("sgd", True), "test acc"] == "0.7000 ± –"
    assert table.loc[("smgd", True), "test acc"] == "0.8500 ± 0.0707"

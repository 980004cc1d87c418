"""Classic post-training pruning (notebook 06, project 002): per-layer and global weight and unit
pruning of a trained MLP, one-shot and fine-tuned, and the compaction timing of unit pruning.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import keras
import numpy as np

from .. import pruning
from ..pruning import costs, masks_for, output_layer
from ..progress import tqdm
from ..runner import guarded_fit
from ..validation import Bool, Epochs, Fraction, Int, List, validated
from .study import Study, setting, state
from .training import TRAINING_SPECS, trained_model

# The datasets of the study: 28x28 grey images, the MLP's input.
POST_TRAINING_DATASETS = ("mnist", "fashion_mnist")
PROJECT002_KS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


@validated(ks=List(Fraction()), finetune_epochs=Epochs(0), batch_size=Int(1), prune_bias=Bool(), progress=Bool())
def post_training_sweep(model, data, ks=PROJECT002_KS, finetune_epochs=1, batch_size=128, prune_bias=True,
                        progress=True):
    """Project 002's experiment and beyond: for every k, prune a copy of the trained ``model`` and
    evaluate it on the test set.

    methods x variants: ``weight`` (per-layer magnitude; ``prune_bias`` = project 002's bias quirk)
    and ``unit`` (column L2 norm), each ``one-shot`` (as project 002 does), ``fine-tuned`` (masks kept,
    ``finetune_epochs`` of Adam) and ``global`` (one threshold over all hidden layers; for
    ``unit`` the units are ranked across layers by their norm). The output layer is never pruned.
    Returns a list of rows ``dataset, method, variant, k, nominal_sparsity, effective_sparsity,
    test_acc, test_loss``.
    """
    trained = model.get_weights()
    optimizer_config = model.optimizer.get_config() if model.optimizer else None
    rows = []
    jobs = [(method, variant, k) for method in ("weight", "unit") for variant in ("one-shot", "fine-tuned", "global")
            for k in ks]
    for method, variant, k in tqdm(jobs, desc=f"{data.name} sweep", disable=not progress, leave=False):
        model.set_weights(trained)
        pruning.detach_masks(model)
        masks = post_training_masks(model, method, variant, k, prune_bias)
        if variant == "fine-tuned" and k > 0:
            pruning.attach_masks(model, masks)
            model.compile(optimizer=keras.optimizers.Adam.from_config(optimizer_config) if optimizer_config
                          else "adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            guarded_fit(model, f"{data.name}-{method}-{variant}-k{k:g}", data.x_train, data.y_train,
                        batch_size=batch_size, epochs=finetune_epochs, verbose=0)
        else:
            pruning.apply_masks(model, masks)
        loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1024, verbose=0)
        rows.append({"dataset": data.name, "method": method, "variant": variant, "k": k,
                     "nominal_sparsity": pruning.sparsity(model, include_output=False)["total"],
                     "effective_sparsity": pruning.effective_sparsity(model),
                     "test_acc": float(accuracy), "test_loss": float(loss)})
    model.set_weights(trained)
    pruning.detach_masks(model)
    return rows


@dataclass(frozen=True)
class PostTraining(Study):
    """Notebook 06's procedure: the trained MLP per dataset (trained, or loaded from the model
    cache, only when a result needs it), its cached pruning sweep and the cached compaction timing.
    The cache keys are the configurations the notebook has always used."""

    epochs: int = setting(TRAINING_SPECS["epochs"])
    batch_size: int = setting(TRAINING_SPECS["batch_size"])
    learning_rate: float = setting(TRAINING_SPECS["learning_rate"])
    seed: int = setting(TRAINING_SPECS["seed"], 0)
    train_subset: int | None = setting(TRAINING_SPECS["train_subset"], None)
    recompute: bool = setting(Bool(), False, key=False)
    _trained: dict = state()

    def pretrained(self, name):
        """``(model, data)`` of the MLP trained on dataset ``name``."""
        if name not in self._trained:
            self._trained[name] = trained_model("mlp", name, self.epochs, self.batch_size, self.learning_rate,
                                                seed=self.seed, train_subset=self.train_subset,
                                                recompute=self.recompute)
        return self._trained[name]

    def sweep(self, datasets, ks=PROJECT002_KS, finetune_epochs=1, prune_bias=True):
        """``(rows of every dataset, {dataset: from the cache?})`` of ``post_training_sweep``."""

        rows, hits = [], {}
        for name in datasets:
            part, hits[name] = self.cached("post_training_sweep", lambda: post_training_sweep(
                *self.pretrained(name), ks, finetune_epochs, self.batch_size, prune_bias),
                dataset=name, ks=list(ks), finetune_epochs=finetune_epochs, prune_bias=prune_bias)
            rows += part
        return rows, hits

    def compaction_timing(self, datasets, compact_ks, latency_repeats=30):
        """``(rows, from the cache?)``: unit-pruned networks at each k compacted, timed and compared."""

        return self.cached("compaction_timing", lambda: [
            row for name in datasets for row in compaction_rows(*self.pretrained(name), compact_ks, latency_repeats)],
            datasets=list(datasets), compact_ks=list(compact_ks), latency_repeats=latency_repeats)


def compaction_rows(model, data, compact_ks, latency_repeats=30):
    """Per k in ``[0, *compact_ks]``: one-shot unit pruning, compaction, and the compact network's
    size, FLOPs, latency (batch 1 and 1024), gzip size, accuracy and largest output difference."""

    rows, trained, dense_flops = [], model.get_weights(), costs.flops(model)
    with tempfile.TemporaryDirectory() as tmp:
        for k in [0.0, *compact_ks]:
            model.set_weights(trained)
            pruning.apply_masks(model, post_training_masks(model, "unit", "one-shot", k))
            small, _ = pruning.compact(model) if k > 0 else (model, None)
            x = data.x_test[:1024]
            max_diff = float(np.abs(small.predict_on_batch(x) - model.predict_on_batch(x)).max())
            acc = float(np.mean(np.argmax(small.predict_on_batch(data.x_test), axis=1) == data.y_test))
            rows.append({"dataset": data.name, "k": k, "params": small.count_params(),
                         "flop_ratio": costs.flops(small) / dense_flops,
                         "latency_b1_ms": 1e3 * costs.latency(small, 1, latency_repeats),
                         "latency_b1024_ms": 1e3 * costs.latency(small, 1024, latency_repeats),
                         "gzip_kb": costs.saved_size(small, f"{tmp}/m.keras") / 1024,
                         "test_acc": acc, "max_abs_diff_vs_masked": max_diff})
    model.set_weights(trained)
    return rows


def post_training_masks(model, method, variant, k, prune_bias=True):
    """Notebook 06's masks: ``weight`` (per-layer magnitude, ``prune_bias`` = project 002's bias
    quirk) or ``unit`` (L2 norm of a unit's incoming weights), per layer or ``global`` (units
    ranked across layers by their norm over sqrt(fan-in)); the output layer is never pruned."""

    granularity = "weight" if method == "weight" else "unit"
    scope = "global" if variant == "global" else "layer"
    return masks_for(model, k, importance="l2" if method == "unit" else "magnitude", granularity=granularity,
                     scope=scope, ignored_layers=[output_layer(model)],
                     include_bias=prune_bias and method == "weight" and scope == "layer",
                     normalize="fan_in" if granularity == "unit" and scope == "global" else None,
                     **(_PROJECTS_UNITS if granularity == "unit" else {}))


# Projects 002 and 003 rank a unit by its own incoming weights and mask only its producing side, and put no
# cap on how many units a layer loses (REPRODUCTION_NOTES.md §12, "Project 002", "Project 003").
_PROJECTS_UNITS = dict(members="producers", max_ratio=1.0)

"""Layer and weight queries shared by pruning, compaction and costs: which layers a model has, in
order, and which weights they own (the weight table, ``helpers.model_weights``, re-exported here).
Which of them pruning touches is ``helpers.pruning.selection`` (it needs the dependency graph).
"""

from __future__ import annotations

import keras

from .model_weights import (KERNEL_ATTRIBUTES, VECTOR_ATTRIBUTES, WeightRef, all_layers,  # noqa: F401 (re-exported)
                            kernel_weights, named_layers, skipped_layers, weights)


def dense_layers(model):
    """The model's Dense layers, in order: the layers ITP prunes (REPRODUCTION_NOTES.md §3)."""
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Dense)]


def conv_layers(model):
    """The model's Conv2D layers, in order."""
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Conv2D)]


PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)

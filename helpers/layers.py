"""Layer queries shared by pruning, compaction and costs: which layers a model has, in order.

Nested models (a ``keras.Model`` used as a layer) are walked into, so a query sees the layers
that own the weights.
"""

from __future__ import annotations

import keras


def all_layers(model):
    """Every non-model layer of ``model`` in order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
        else:
            yield layer


def dense_layers(model):
    """The model's Dense layers, in order: the layers ITP prunes (REPRODUCTION_NOTES.md §3)."""
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Dense)]


def conv_layers(model):
    """The model's Conv2D layers, in order."""
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Conv2D)]

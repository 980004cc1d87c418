"""Layer queries shared by pruning, compaction and costs: which layers a model has, in order,
and which of them pruning touches.

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


PRUNABLE = (keras.layers.Dense, keras.layers.Conv2D)


def prunable_layers(model, layers=None, include_output=False, ignored_layers=None):
    """Dense and Conv2D layers to prune, in order: ``layers`` by name if given, else all but the
    last (output) one unless ``include_output``; minus ``ignored_layers`` (names or layers)."""
    candidates = [layer for layer in all_layers(model) if isinstance(layer, PRUNABLE)]
    names = {layer.name for layer in candidates}
    ignored = {getattr(item, "name", item) for item in (ignored_layers or ())}
    for asked in (set(layers or ()), ignored):
        unknown = asked - names
        if unknown:
            raise ValueError(f"no prunable (Dense/Conv2D) layer named {sorted(unknown)}; have {sorted(names)}")
    if layers is not None:
        selected = [layer for layer in candidates if layer.name in set(layers)]
    else:
        selected = candidates if include_output else candidates[:-1]
    return [layer for layer in selected if layer.name not in ignored]


def output_layer(model):
    """The name of the model's last Dense/Conv2D layer (the classifier, usually left unpruned)."""
    candidates = [layer for layer in all_layers(model) if isinstance(layer, PRUNABLE)]
    if not candidates:
        raise ValueError(f"{model.name} has no Dense or Conv2D layer")
    return candidates[-1].name

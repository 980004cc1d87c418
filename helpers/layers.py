"""Layer and weight queries shared by pruning, compaction and costs: which layers a model has, in
order, which weights they own (the weight table, ``helpers.model_weights``, re-exported here), and
which of them pruning touches (``prunable_layers``; the output layers are found from the dependency
graph, ``helpers.pruning.dependency``).
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


def output_layers(model):
    """Names of the kernel layers whose output channels reach the model's outputs, found from the
    graph (``helpers.pruning.dependency``), not from the order the layers were defined in."""
    from .pruning.dependency import DependencyGraph  # here: helpers.pruning's __init__ imports this module

    return DependencyGraph.of(model).output_layers()


def prunable_layers(model, layers=None, include_output=False, ignored_layers=None):
    """Dense and Conv2D layers to prune, in order: ``layers`` by name if given, else all but the
    output layers (``output_layers``) unless ``include_output``; minus ``ignored_layers`` (names
    or layers)."""
    candidates = [layer for layer in all_layers(model) if isinstance(layer, PRUNABLE)]
    names = {layer.name for layer in candidates}
    ignored = {getattr(item, "name", item) for item in (ignored_layers or ())}
    for asked in (set(layers or ()), ignored):
        unknown = asked - names
        if unknown:
            raise ValueError(f"no prunable (Dense/Conv2D) layer named {sorted(unknown)}; have {sorted(names)}")
    if layers is not None:
        selected = [layer for layer in candidates if layer.name in set(layers)]
    elif include_output:
        selected = candidates
    else:
        outputs = set(output_layers(model))
        selected = [layer for layer in candidates if layer.name not in outputs]
    return [layer for layer in selected if layer.name not in ignored]


def output_layer(model):
    """The name of the model's output kernel layer (the classifier, usually left unpruned), from
    the graph; the last one if the model has several outputs."""
    names = output_layers(model)
    if not names:
        raise ValueError(f"{model.name} has no kernel layer that produces its outputs")
    return names[-1]

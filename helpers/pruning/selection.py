"""Which layers pruning touches: the output layers, found from the dependency graph (not from the
order the layers were defined in), and the prunable Dense/Conv2D layers, all but the output
layers unless asked.
"""

from __future__ import annotations

from ..layers import PRUNABLE, all_layers
from .dependency import DependencyGraph


def output_layers(model):
    """Names of the kernel layers whose output channels reach the model's outputs, found from the
    graph (``helpers.pruning.dependency``), not from the order the layers were defined in."""
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

"""The weight table of a Keras model: which layers it has, in order, and which weights they own.

Nested models (a ``keras.Model`` used as a layer) and the sublayers of composite layers
(``MultiHeadAttention``'s projections, an RNN's cell) are walked into, so a query sees the layers
that own the weights. Every weight has a **key** that is unique in the model and survives a
``.keras`` save and load: the names of the layers that lead to it and the variable's own name,
``"encoder/fc/kernel"``. (Keras' own ``variable.path`` is not unique: two nested models with a
``Dense`` named ``fc`` both give ``fc/kernel`` after reloading.) For a layer of the top-level model
the key is ``variable.path`` (``"hidden1/kernel"``).

A leaf (Keras only): the dependency graph (``helpers.pruning.dependency``) reads it, and
``helpers.layers`` (which layers pruning selects, from that graph) re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

# Weights that carry a layer's connections (pruned by unstructured masks): the variable's
# attribute -> the layer attribute holding its constraint (what a layer's config saves).
KERNEL_ATTRIBUTES = {"kernel": "kernel_constraint", "depthwise_kernel": "depthwise_constraint",
                     "pointwise_kernel": "pointwise_constraint", "embeddings": "embeddings_constraint",
                     "recurrent_kernel": "recurrent_constraint"}
# Per-unit weights a structured mask also covers.
VECTOR_ATTRIBUTES = {"bias": "bias_constraint", "gamma": "gamma_constraint", "beta": "beta_constraint",
                     "moving_mean": None, "moving_variance": None}


@dataclass(frozen=True)
class WeightRef:
    """One weight of a model: its unique key, the variable, the layer that owns it, the owning
    layer's key, the variable's attribute on the layer and the layer attribute of its constraint
    (None when the layer has none)."""

    key: str
    variable: object
    layer: object
    layer_key: str
    attribute: str
    constraint_attribute: str | None

    @property
    def is_kernel(self):
        return self.attribute in KERNEL_ATTRIBUTES


def _sublayers(layer):
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return list(getattr(layer, "_layers", []) or [])


def named_layers(model, prefix=""):
    """``(key, layer)`` for every layer of ``model`` that owns weights or has no sublayers, in
    order, descending into nested models and composite layers; a layer's key is the names of the
    layers leading to it joined by ``/``."""
    for layer in _sublayers(model):
        key = f"{prefix}{layer.name}"
        children = _sublayers(layer)
        if not children or not isinstance(layer, keras.Model):
            yield key, layer
        if children:
            yield from named_layers(layer, prefix=f"{key}/")


def all_layers(model):
    """Every non-model layer of ``model`` in order, descending into nested models (not into the
    sublayers of composite layers: those are reached through ``named_layers``)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
        else:
            yield layer


def _attribute_of(layer, variable):
    for attribute in (*KERNEL_ATTRIBUTES, *VECTOR_ATTRIBUTES):
        try:
            candidate = getattr(layer, attribute, None)
        except Exception:  # a property that raises (a quantized or unbuilt layer)
            continue
        if candidate is variable:
            return attribute
    return None


def weights(model):
    """``{key: WeightRef}`` of every weight of ``model`` that a layer owns directly, in order."""
    table = {}
    for layer_key, layer in named_layers(model):
        if not layer.built:
            continue
        own = list(getattr(layer, "_trainable_variables", [])) + list(getattr(layer, "_non_trainable_variables", []))
        for variable in own:
            attribute = _attribute_of(layer, variable)
            name = attribute or variable.name
            constraint_attribute = {**KERNEL_ATTRIBUTES, **VECTOR_ATTRIBUTES}.get(attribute)
            if attribute == "kernel" and not hasattr(layer, "kernel_constraint"):
                constraint_attribute = "depthwise_constraint"  # DepthwiseConv's kernel
            if constraint_attribute is not None and not hasattr(layer, constraint_attribute):
                constraint_attribute = None
            key = f"{layer_key}/{name}"
            table[key] = WeightRef(key, variable, layer, layer_key, attribute or name, constraint_attribute)
    return table


def kernel_weights(model):
    """The ``WeightRef`` of every connection weight (``KERNEL_ATTRIBUTES``) of ``model``, in order."""
    return [ref for ref in weights(model).values() if ref.is_kernel]


def skipped_layers(model):
    """Keys of the layers with trainable weights of which none is a known kernel, bias or
    normalisation weight: what unstructured pruning and ``sparsity`` do not touch (a user's
    custom layer, PReLU's slopes)."""
    known = {ref.layer_key for ref in weights(model).values() if ref.attribute in {**KERNEL_ATTRIBUTES, **VECTOR_ATTRIBUTES}}
    return [key for key, layer in named_layers(model)
            if layer.built and getattr(layer, "_trainable_variables", None) and key not in known]

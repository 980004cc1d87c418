"""The dependency graph of a Keras 3 model: which channels must be pruned together.

Torch-Pruning's ``DependencyGraph`` for Keras 3. Every tensor of the (flattened) functional graph
has a channel axis, its last one; every channel of every tensor is a node. Layers tie nodes:

- a kernel layer (Dense, Conv1D/2D/3D, Conv*Transpose, SeparableConv*) *consumes* the channels of
  its input (its kernel's input axis) and *produces* those of its output (the kernel's output axis
  and the bias), and ties nothing across;
- channel-wise layers tie an input channel to the same output channel: BatchNormalization,
  elementwise activations, pooling, global pooling, dropout, padding, cropping, up-sampling, a
  Reshape that keeps the last axis; DepthwiseConv ties input channel c to its output channels
  ``c*m ... c*m+m-1``; Flatten ties channel c to every position of c in the flat vector;
- merges (Add, Subtract, Multiply, Average, Maximum, Minimum) tie their inputs and output
  channel by channel; Concatenate on the channel axis maps each input to its offset;
- a shared layer ties the channels of all its calls.

A **channel** of the graph is a connected set of nodes: removing it removes every node in it.
It can be removed only if it does not touch the model's inputs or outputs, passes through no
layer the graph cannot follow (anything else: attention, RNNs, LayerNormalization over
channels, a non-elementwise activation such as softmax, ``channels_first``, grouped
convolutions, a Reshape of the channel axis), and some kernel layer produces it. Blocked
channels are listed with the layer and the reason (``blocked``), never pruned silently wrong.
A **group** is the set of channels that touch the same tensors (a layer's filters; a residual
stage's channels, shared by every block that adds to it), ranked and pruned as one unit.

The graph knows, for every layer call, which weight slices belong to which channel
(``masks``: the producer's kernel column and bias, the BN scale/offset/mean, a depthwise channel,
every consumer's input slice), so a structured mask zeroes all of them and the masked model is
exactly the function its compaction (``compaction.compact``) computes.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import keras
import numpy as np

from ..model_weights import weights as weight_table
from .errors import PruningError

L = keras.layers

KERNEL_LAYERS = (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D)
TRANSPOSE_LAYERS = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
SEPARABLE_LAYERS = (L.SeparableConv1D, L.SeparableConv2D)
DEPTHWISE_LAYERS = (L.DepthwiseConv1D, L.DepthwiseConv2D)
NORM_LAYERS = (L.BatchNormalization,)
CHANNELWISE_LAYERS = (
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise, L.GaussianDropout,
    L.AlphaDropout, L.ActivityRegularization, L.Identity,
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
)
ACTIVATION_LAYERS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU)
MERGE_LAYERS = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
# Activations that act on each entry alone (keras.activations names): anything else, softmax
# and GLU among them, mixes channels and blocks the channels it reads.
ELEMENTWISE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid", "hard_sigmoid",
    "hard_silu", "hard_swish", "tanh", "softplus", "softsign", "exponential", "mish", "log_sigmoid", "celu",
    "hard_tanh", "tanh_shrink", "squareplus", "sparse_plus", "soft_shrink", "hard_shrink", "threshold",
})


def activation_is_elementwise(activation):
    return getattr(activation, "__name__", None) in ELEMENTWISE_ACTIVATIONS


@dataclass
class Space:
    """The channel axis of one tensor: nodes ``start ... start + size - 1``."""

    index: int
    size: int
    start: int
    shape: tuple

    @property
    def nodes(self):
        return np.arange(self.start, self.start + self.size)


@dataclass
class Call:
    """One call of a layer in the flattened graph and what it does to channels."""

    layer: object
    key: str
    role: str            # kernel | transpose | separable | depthwise | norm | channelwise | flatten | merge | concat | blocked
    inputs: list
    outputs: list
    reason: str | None = None
    node: object = None  # the Keras node: how the layer was called (arguments, keywords), to call it again


@dataclass
class Group:
    """Channels that touch the same tensors and are ranked and pruned as one unit."""

    channels: np.ndarray   # component labels, in the order of the first producer's output channels
    producers: list        # keys of the kernel layers producing these channels
    spaces: tuple          # spaces the channels touch

    @property
    def size(self):
        return len(self.channels)

    @property
    def name(self):
        return self.producers[0] + (f" (+{len(self.producers) - 1} coupled)" if len(self.producers) > 1 else "")


@dataclass
class _Builder:
    spaces: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    space_of: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    blocked: dict = field(default_factory=dict)   # space index -> reason (first one)
    nodes: int = 0

    def new_space(self, tensor):
        shape = tuple(tensor.shape[1:])
        size = shape[-1] if shape and shape[-1] is not None else 0
        space = Space(len(self.spaces), int(size), self.nodes, shape)
        self.nodes += space.size
        self.spaces.append(space)
        self.space_of[id(tensor)] = space.index
        if not shape or shape[-1] is None:
            self.block(space.index, "its channel axis has no fixed size")
        return space.index

    def space(self, tensor):
        if id(tensor) not in self.space_of:
            return self.new_space(tensor)
        return self.space_of[id(tensor)]

    def block(self, space, reason):
        self.blocked.setdefault(space, reason)

    def tie(self, a, b, a_index=None, b_index=None):
        sa, sb = self.spaces[a], self.spaces[b]
        ia = np.arange(sa.size) if a_index is None else np.asarray(a_index)
        ib = np.arange(sb.size) if b_index is None else np.asarray(b_index)
        self.edges.append((sa.start + ia, sb.start + ib))


def _layer_keys(model):
    keys, seen = {}, set()

    def walk(m, prefix):
        for layer in m.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            key = f"{prefix}{layer.name}"
            keys[id(layer)] = key
            if isinstance(layer, keras.Model):
                walk(layer, f"{key}/")

    walk(model, "")
    return keys


def _functional(model):
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise PruningError(f"{model.name}: this Sequential model has no input shape yet; build it (start it with "
                               "keras.Input(shape)) before pruning")
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise PruningError(f"{model.name} is a subclassed model ({type(model).__name__}): its graph of layers is not "
                           "known, so channels cannot be followed through it; rebuild it with the functional API "
                           "(keras.Input -> layers -> keras.Model(inputs, outputs)), or prune it per weight with an "
                           "explicit layers= / ignored_layers= list")
    return model


def _channels_first(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def _describe(call_layer, builder, inputs, outputs, key):
    """The role of one call, its ties and blocks."""
    layer = call_layer
    name = type(layer).__name__

    def block_all(reason):
        for s in (*inputs, *outputs):
            builder.block(s, f"{key} ({name}): {reason}")
        return "blocked", reason

    if _channels_first(layer):
        return block_all("data_format='channels_first' (the graph follows channels-last tensors only)")
    if isinstance(layer, (*KERNEL_LAYERS, *TRANSPOSE_LAYERS, *SEPARABLE_LAYERS)):
        if getattr(layer, "groups", 1) != 1:
            return block_all(f"grouped convolution (groups={layer.groups})")
        if len(inputs) != 1:
            return block_all("several inputs")
        if not activation_is_elementwise(layer.activation):
            builder.block(outputs[0], f"{key} ({name}): activation {getattr(layer.activation, '__name__', '?')!r} "
                                      "is not elementwise (it mixes channels)")
        role = ("transpose" if isinstance(layer, TRANSPOSE_LAYERS) else
                "separable" if isinstance(layer, SEPARABLE_LAYERS) else "kernel")
        return role, None
    if isinstance(layer, DEPTHWISE_LAYERS):
        if not activation_is_elementwise(layer.activation):
            return block_all(f"activation {getattr(layer.activation, '__name__', '?')!r} is not elementwise")
        m, c = layer.depth_multiplier, builder.spaces[inputs[0]].size
        builder.tie(inputs[0], outputs[0], np.repeat(np.arange(c), m), np.arange(c * m))
        return "depthwise", None
    if isinstance(layer, NORM_LAYERS):
        rank = len(builder.spaces[inputs[0]].shape)
        if layer.axis not in (-1, rank):
            return block_all(f"normalises axis {layer.axis}, not the channel axis")
        builder.tie(inputs[0], outputs[0])
        return "norm", None
    if isinstance(layer, ACTIVATION_LAYERS) or isinstance(layer, CHANNELWISE_LAYERS):
        activation = getattr(layer, "activation", None)
        if isinstance(layer, L.Activation) and not activation_is_elementwise(activation):
            return block_all(f"activation {getattr(activation, '__name__', '?')!r} is not elementwise (it mixes channels)")
        builder.tie(inputs[0], outputs[0])
        return "channelwise", None
    if isinstance(layer, L.Rescaling):
        if np.size(layer.scale) != 1 or np.size(layer.offset) != 1:
            return block_all("per-channel scale or offset")
        builder.tie(inputs[0], outputs[0])
        return "channelwise", None
    if isinstance(layer, L.Reshape):
        if builder.spaces[inputs[0]].size != builder.spaces[outputs[0]].size:
            return block_all("reshapes the channel axis")
        builder.tie(inputs[0], outputs[0])
        return "channelwise", None
    if isinstance(layer, L.Flatten):
        c, n = builder.spaces[inputs[0]].size, builder.spaces[outputs[0]].size
        builder.tie(inputs[0], outputs[0], np.arange(n) % c, np.arange(n))
        return "flatten", None
    if isinstance(layer, MERGE_LAYERS):
        size = builder.spaces[outputs[0]].size
        for s in inputs:
            if builder.spaces[s].size == size:
                builder.tie(s, outputs[0])
            else:  # broadcast over channels (a size-1 input)
                builder.block(s, f"{key} ({name}): broadcast over the channel axis")
        return "merge", None
    if isinstance(layer, L.Concatenate):
        rank = len(builder.spaces[outputs[0]].shape)
        if layer.axis in (-1, rank):
            offset = 0
            for s in inputs:
                size = builder.spaces[s].size
                builder.tie(s, outputs[0], None, np.arange(offset, offset + size))
                offset += size
        else:
            for s in inputs:
                builder.tie(s, outputs[0])
        return "concat", None
    return block_all("a layer type the dependency graph does not follow")


class DependencyGraph:
    """The channel dependencies of a Sequential or functional model (nested models flattened).

    ``groups`` are the prunable groups; ``blocked`` maps each layer call that keeps channels
    from being pruned to the reason; ``masks(pruned)`` gives the structured masks of a set of
    pruned channels. Build it with ``DependencyGraph.of(model)`` (cached per model until its
    layers change).
    """

    _cache = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, model):
        """The (cached) graph of ``model``."""
        stamp = tuple(id(layer) for layer in model.layers)
        cached = cls._cache.get(model)
        if cached is not None and cached._stamp == stamp:
            return cached
        graph = cls(model)
        graph._stamp = stamp
        cls._cache[model] = graph
        return graph

    def __init__(self, model):
        self.model = model
        keys = _layer_keys(model)
        builder = _Builder()
        top = _functional(model)
        self.input_spaces = [builder.space(tensor) for tensor in top.inputs]
        for space in self.input_spaces:
            builder.block(space, "model input")
        self._walk(top, builder, keys)
        self.output_spaces = [builder.space(tensor) for tensor in top.outputs]
        for space in self.output_spaces:
            builder.block(space, "model output")
        self.spaces, self.calls = builder.spaces, builder.calls
        self._tie_shared_layers(builder)
        self.labels = _components(builder.nodes, builder.edges)
        self._blocked_spaces = builder.blocked
        self._analyse()

    # ---------------------------------------------------------------- building
    def _walk(self, functional, builder, keys):
        for depth in sorted(functional._nodes_by_depth, reverse=True):
            for node in functional._nodes_by_depth[depth]:
                layer = node.operation
                if isinstance(layer, L.InputLayer):
                    continue
                inputs = [builder.space(t) for t in node.input_tensors]
                if isinstance(layer, keras.Model):
                    inner = _functional(layer)
                    for inner_tensor, space in zip(inner.inputs, inputs):
                        builder.space_of[id(inner_tensor)] = space
                    self._walk(inner, builder, keys)
                    for outer, inner_tensor in zip(node.output_tensors, inner.outputs):
                        builder.space_of[id(outer)] = builder.space(inner_tensor)
                    continue
                outputs = [builder.new_space(t) for t in node.output_tensors]
                key = keys.get(id(layer), getattr(layer, "name", type(layer).__name__))
                if not isinstance(layer, keras.layers.Layer):  # a keras.ops call in a functional graph
                    role, reason = "blocked", "an operation the dependency graph does not follow"
                    for s in (*inputs, *outputs):
                        builder.block(s, f"{key} ({type(layer).__name__}): {reason}")
                else:
                    role, reason = _describe(layer, builder, inputs, outputs, key)
                builder.calls.append(Call(layer, key, role, inputs, outputs, reason, node))

    def _tie_shared_layers(self, builder):
        first = {}
        for call in self.calls:
            if id(call.layer) in first:
                other = first[id(call.layer)]
                for a, b in zip((*other.inputs, *other.outputs), (*call.inputs, *call.outputs)):
                    if self.spaces[a].size == self.spaces[b].size:
                        builder.tie(a, b)
            else:
                first[id(call.layer)] = call

    def _analyse(self):
        n = len(self.labels)
        blocked = np.zeros(n, bool)
        self.block_reasons = {}  # component label -> reason
        for space, reason in self._blocked_spaces.items():
            nodes = self.spaces[space].nodes
            blocked[nodes] = True
            for label in np.unique(self.labels[nodes]):
                self.block_reasons.setdefault(int(label), reason)
        blocked_labels = np.zeros(n, bool)
        blocked_labels[self.labels[blocked]] = True
        self.blocked_component = blocked_labels  # indexed by label
        producer = np.zeros(n, bool)
        self.producer_spaces = {}
        for call in self.calls:
            if call.role in ("kernel", "transpose", "separable"):
                self.producer_spaces.setdefault(call.outputs[0], []).append(call.key)
        for space in self.producer_spaces:
            producer[self.labels[self.spaces[space].nodes]] = True
        self.produced_component = producer
        # Groups: prunable channels with the same set of tensors.
        node_space = np.repeat(np.arange(len(self.spaces)), [s.size for s in self.spaces])
        prunable = producer & ~blocked_labels
        in_prunable = prunable[self.labels]
        pairs = np.unique(np.stack([self.labels[in_prunable], node_space[in_prunable]], axis=1), axis=0)
        signature = {}
        for label, space in pairs:
            signature.setdefault(int(label), []).append(int(space))
        by_signature = {}
        for label, spaces in signature.items():
            by_signature.setdefault(tuple(spaces), []).append(label)
        self.groups = []
        for spaces, labels in by_signature.items():
            root = min((s for s in spaces if s in self.producer_spaces))
            root_labels = self.labels[self.spaces[root].nodes]  # channel order: the root's output channels
            order = [int(label) for label in root_labels if label in set(labels)]
            producers = [key for s in spaces if s in self.producer_spaces for key in self.producer_spaces[s]]
            self.groups.append(Group(np.array(list(dict.fromkeys(order))), list(dict.fromkeys(producers)), spaces))
        self.groups.sort(key=lambda g: g.spaces[0])

    # ---------------------------------------------------------------- queries
    @property
    def blocked(self):
        """The reasons channels cannot be pruned, one per layer call (``"mha (MultiHeadAttention): a
        layer type the dependency graph does not follow"``), model inputs and outputs left out."""
        return sorted({reason for reason in self._blocked_spaces.values() if reason not in ("model input", "model output")})

    def unprunable_producers(self):
        """``{producer key: reason}`` for kernel layers none of whose output channels can be pruned."""
        out = {}
        for space, keys in self.producer_spaces.items():
            labels = self.labels[self.spaces[space].nodes]
            if self.blocked_component[labels].all():
                reason = self.block_reasons.get(int(labels[0]), "blocked")
                for key in keys:
                    out[key] = reason
        return out

    def output_layers(self):
        """Keys of the kernel layers whose output channels reach a model output."""
        output_labels = set()
        for space in self.output_spaces:
            output_labels.update(int(v) for v in np.unique(self.labels[self.spaces[space].nodes]))
        names = []
        for space, keys in self.producer_spaces.items():
            if output_labels & set(int(v) for v in np.unique(self.labels[self.spaces[space].nodes])):
                names.extend(keys)
        return [key.split("/")[-1] for key in dict.fromkeys(names)]

    def keep_vectors(self, pruned_labels):
        """Per space, the boolean keep vector of its channels when ``pruned_labels`` are removed."""
        pruned = np.isin(self.labels, np.asarray(list(pruned_labels), dtype=np.int64))
        return [~pruned[s.start:s.start + s.size] for s in self.spaces]

    def masks(self, pruned_labels, members="all", groups=None):
        """``{weight key: keep-mask}`` removing the channels ``pruned_labels`` from every member:
        producers' kernel slices and biases, BN scale/offset/mean, depthwise channels and (with
        ``members="all"``) every consumer's input slice; ``members="producers"``: the producers'
        kernel slices and biases only. Every member of ``groups`` (default: the
        groups of the pruned channels) gets a mask, all ones where nothing of it is pruned."""
        keep = self.keep_vectors(pruned_labels)
        if groups is None:
            pruned = set(int(v) for v in pruned_labels)
            groups = [g for g in self.groups if pruned & set(int(v) for v in g.channels)]
        cover = {s for g in groups for s in g.spaces}
        refs = _refs_by_layer(self.model)
        masks = {}
        for call in self.calls:
            if call.role in ("blocked", "channelwise", "flatten", "merge", "concat"):
                continue
            k_in, k_out = keep[call.inputs[0]], keep[call.outputs[0]]
            reads = call.inputs[0] in cover and call.role in ("kernel", "transpose", "separable")
            if members == "producers":  # the classic filter: its own kernel and bias, nothing else
                if call.role in ("norm", "depthwise"):
                    continue
                k_in, reads = np.ones_like(k_in), False
            if not (reads or call.outputs[0] in cover):
                continue
            for attribute, mask in _call_masks(call, k_in, k_out).items():
                ref = refs[id(call.layer)].get(attribute)
                if ref is None:
                    continue
                masks[ref.key] = masks[ref.key] & mask if ref.key in masks else mask
        return masks


def _refs_by_layer(model):
    table = {}
    for ref in weight_table(model).values():
        table.setdefault(id(ref.layer), {})[ref.attribute] = ref
    return table


def _call_masks(call, k_in, k_out):
    """Keep-masks of one call's weights, by attribute, from its input and output keep vectors."""
    layer = call.layer
    if call.role in ("kernel", "transpose"):  # a transposed kernel holds (..., out, in)
        rows, columns = (k_in, k_out) if call.role == "kernel" else (k_out, k_in)
        masks = {"kernel": np.broadcast_to(rows[:, None] & columns[None, :], tuple(layer.kernel.shape)).copy()}
        if layer.use_bias:
            masks["bias"] = k_out.copy()
        return masks
    if call.role == "separable":
        m = layer.depth_multiplier
        masks = {"depthwise_kernel": np.broadcast_to(k_in[:, None], tuple(layer.depthwise_kernel.shape)).copy(),
                 "pointwise_kernel": np.broadcast_to(np.repeat(k_in, m)[:, None] & k_out[None, :],
                                                     tuple(layer.pointwise_kernel.shape)).copy()}
        if layer.use_bias:
            masks["bias"] = k_out.copy()
        return masks
    if call.role == "depthwise":
        m = layer.depth_multiplier
        masks = {"kernel": np.broadcast_to(k_out.reshape(-1, m), tuple(layer.kernel.shape)).copy()}
        if layer.use_bias:
            masks["bias"] = k_out.copy()
        return masks
    if call.role == "norm":
        masks = {"moving_mean": k_out.copy()}
        if layer.scale:
            masks["gamma"] = k_out.copy()
        if layer.center:
            masks["beta"] = k_out.copy()
        return masks
    return {}


def _components(n, edges):
    """Connected-component labels of ``n`` nodes under ``edges`` (pairs of index arrays), each
    label the smallest node of its component: min-label propagation with pointer jumping."""
    labels = np.arange(n, dtype=np.int64)
    if not edges or n == 0:
        return labels
    a = np.concatenate([e[0] for e in edges]).astype(np.int64)
    b = np.concatenate([e[1] for e in edges]).astype(np.int64)
    while True:
        before = labels.copy()
        low = np.minimum(labels[a], labels[b])
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:  # pointer jumping: every node points at its label's label
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(before, labels):
            return labels

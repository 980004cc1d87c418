"""The networks of the paper and of the neighbouring projects 002-004 (REPRODUCTION_NOTES.md
§§4, 12), and a CIFAR ResNet-20 (``resnet20``) for residual-network pruning (project 004's ResNet
experiments).

Every builder returns an unbuilt-optimizer functional ``keras.Model`` whose weights depend
only on the seed: ``keras.utils.set_random_seed(seed)`` is called first, so the same seed
gives the same initial weights for every optimizer (the authors' intent, REPRODUCTION_NOTES.md, B7).
(``seed=None`` reseeds nothing: ``dense_fans`` builds a model only to read its shapes.)

Variants of the paper's networks:
  * ``"multi"``: no regularizer on the dense layers; the L1 term is the second objective
    that the multi-gradient optimizers handle (``lenet5multimodel`` / ``vggmulti``).
  * ``"baseline"``: ``l1(lambda_d)`` on every dense kernel (``SignL1``), for the single-objective
    Keras optimizers (``lenet5regmodel`` / ``vggreg``).
Both keep ``l2(lambda_c)`` on the conv kernels, as the original code does.
"""

from __future__ import annotations

import functools
import random
import threading

import keras
from keras import layers, ops, regularizers

from .layers import all_layers, conv_layers, dense_layers  # noqa: F401  (re-exported: models.dense_layers is public)

MODELS = ("lenet5", "vgg", "mlp", "cifar_cnn", "resnet20")
VARIANTS = ("multi", "baseline")

# Hand-tuned L1 weights of the baselines and conv weight decay (REPRODUCTION_NOTES.md §§1.1, 4, 6.1).
LAMBDA_DENSE = {"lenet5": 3e-4, "vgg": 0.03}
LAMBDA_CONV = {"lenet5": 1e-4, "vgg": 1e-6}

# Which model each dataset uses in the paper's experiments.
PAPER_MODEL = {"mnist": "lenet5", "cifar10": "vgg"}


@keras.saving.register_keras_serializable(package="helpers")
class SignL1(regularizers.Regularizer):
    """``l1 * sum(|w|)`` whose gradient is ``l1 * sign(w)`` on every backend.

    Keras' ``regularizers.L1`` differentiates ``abs``, and the backends disagree at exactly 0:
    TensorFlow's subgradient is 0, JAX's is 1. With ITP the dense weights *are* exactly 0, so the
    Adam + L1 baseline drifted apart between backends (measured: 4,432 of 58,920 zero/nonzero
    decisions differ after two epochs). Writing the value as ``w * stop_gradient(sign(w))`` gives
    the same value and TensorFlow's subgradient everywhere.
    """

    def __init__(self, l1):
        self.l1 = float(l1)

    def __call__(self, x):
        return self.l1 * ops.sum(x * ops.stop_gradient(ops.sign(x)))

    def get_config(self):
        return {"l1": self.l1}


def _seed(seed):
    if seed is not None:
        keras.utils.set_random_seed(seed)


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def _dense_regularizer(variant, lambda_dense):
    _check_variant(variant)
    if lambda_dense < 0:
        raise ValueError(f"lambda_dense must be >= 0, got {lambda_dense}")
    return SignL1(lambda_dense) if variant == "baseline" and lambda_dense > 0 else None


def lenet5(variant="multi", seed=0, lambda_dense=LAMBDA_DENSE["lenet5"],
           lambda_conv=LAMBDA_CONV["lenet5"], input_shape=(28, 28, 1)):
    """The paper's LeNet-5 variant: 3x3 convs, average pooling, 60,074 parameters."""
    _seed(seed)
    dense_reg = _dense_regularizer(variant, lambda_dense)
    conv_reg = regularizers.L2(lambda_conv) if lambda_conv > 0 else None
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(6, 3, activation="relu", kernel_regularizer=conv_reg, name="conv1")(inputs)
    x = layers.AveragePooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 3, activation="relu", kernel_regularizer=conv_reg, name="conv2")(x)
    x = layers.AveragePooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", kernel_regularizer=dense_reg, name="denselayer1")(x)
    x = layers.Dense(84, activation="relu", kernel_regularizer=dense_reg, name="denselayer2")(x)
    outputs = layers.Dense(10, activation="softmax", kernel_regularizer=dense_reg, name="denselayer3")(x)
    return keras.Model(inputs, outputs, name=f"lenet5_{variant}")


def vgg(variant="multi", seed=0, lambda_dense=LAMBDA_DENSE["vgg"],
        lambda_conv=LAMBDA_CONV["vgg"], input_shape=(32, 32, 3)):
    """The paper's VGG-like CIFAR-10 network: 309,290 parameters, one dense layer.

    Conv(ELU, same) -> BN, twice per block, then max-pool and dropout 0.2/0.3/0.4;
    BN comes after the activation as in the original code.
    """
    _seed(seed)
    dense_reg = _dense_regularizer(variant, lambda_dense)
    conv_reg = regularizers.L2(lambda_conv) if lambda_conv > 0 else None
    inputs = keras.Input(input_shape)
    x = inputs
    for block, (filters, drop) in enumerate([(32, 0.2), (64, 0.3), (128, 0.4)], start=1):
        for j in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", activation="elu",
                              kernel_regularizer=conv_reg, name=f"conv{block}_{j}")(x)
            x = layers.BatchNormalization(name=f"bn{block}_{j}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
        x = layers.Dropout(drop, name=f"dropout{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", kernel_regularizer=dense_reg, name="denselayer")(x)
    return keras.Model(inputs, outputs, name=f"vgg_{variant}")


def mlp(seed=0, input_shape=(28, 28, 1), hidden=(1000, 1000, 500, 200)):
    """Project 002's MLP (Keras_pruning): 784-1000-1000-500-200-10, 2,388,710 parameters."""
    _seed(seed)
    inputs = keras.Input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, activation="relu", name=f"hidden{i}")(x)
    outputs = layers.Dense(10, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="mlp")


def cifar_cnn(width=1.0, seed=0, input_shape=(32, 32, 3)):
    """Project 003's CIFAR CNN (nn-pruning) with a width multiplier.

    At ``width=1`` it is project 003's network: conv 128/512/1024 (3x3, valid, ReLU, max-pool 2)
    then fc 1024 -> 500 -> 10, about 10.0 M parameters. ``width`` scales every conv's
    channels and every hidden fc layer's units, keeping the shape (10 outputs fixed).
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    _seed(seed)

    def scaled(n):
        return max(1, int(round(n * width)))

    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((128, 512, 1024), start=1):
        x = layers.Conv2D(scaled(filters), 3, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(scaled(1024), activation="relu", name="fc1")(x)
    x = layers.Dense(scaled(500), activation="relu", name="fc2")(x)
    outputs = layers.Dense(10, activation="softmax", name="fc3")(x)
    return keras.Model(inputs, outputs, name=f"cifar_cnn_w{width:g}")


def resnet20(width=1.0, blocks=3, seed=0, input_shape=(32, 32, 3), classes=10, l2=1e-4):
    """A CIFAR ResNet (He et al. 2016, section 4.2), ResNet-20 at the defaults: a 3x3 conv of 16
    filters, then 3 stages of ``blocks`` basic blocks with 16/32/64 filters (the first block of
    stages 2 and 3 strides 2), global average pooling and a softmax Dense; 274,042 parameters.

    A basic block is conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (post-activation,
    v1). The shortcut is the identity within a stage and a 1x1 convolution (stride 2) + BN where
    the shape changes (option B; the paper's CIFAR nets pad with zeros instead, 0.27 M either
    way). Convolutions have no bias (BN follows) and ``l2`` weight decay (Keras ``L2``, as the
    Keras CIFAR ResNet example; 0 for none); channels-last, functional. ``width`` scales every
    stage's filters (at least 1) and ``blocks`` sets the blocks per stage (3: ResNet-20; n: a
    ResNet-(6n+2)), for small test networks. Layers are named ``stem_conv``, ``s2b1_conv1``,
    ``s2b1_proj``, ``s2b1_add``, ...: the dependency graph's groups are each block's first conv
    and one residual stream per stage (its producers: the stem or projection and every block's
    second conv).
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    _seed(seed)

    def conv(x, filters, kernel, strides, name):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                             kernel_initializer="he_normal",
                             kernel_regularizer=regularizers.L2(l2) if l2 else None, name=name)(x)

    def bn(x, name):
        return layers.BatchNormalization(name=name)(x)

    widths = [max(1, int(round(f * width))) for f in (16, 32, 64)]
    inputs = keras.Input(input_shape)
    x = layers.Activation("relu", name="stem_relu")(bn(conv(inputs, widths[0], 3, 1, "stem_conv"), "stem_bn"))
    for stage, filters in enumerate(widths, start=1):
        for block in range(1, blocks + 1):
            name = f"s{stage}b{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            y = layers.Activation("relu", name=f"{name}_relu1")(
                bn(conv(x, filters, 3, strides, f"{name}_conv1"), f"{name}_bn1"))
            y = bn(conv(y, filters, 3, 1, f"{name}_conv2"), f"{name}_bn2")
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = bn(conv(x, filters, 1, strides, f"{name}_proj"), f"{name}_proj_bn")
            x = layers.Activation("relu", name=f"{name}_relu2")(layers.Add(name=f"{name}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="dense")(x)
    depth = 6 * blocks + 2
    return keras.Model(inputs, outputs, name=f"resnet{depth}" + ("" if width == 1 else f"_w{width:g}"))


def build_model(name, variant="multi", seed=0, **kwargs):
    """Build a model by name (``lenet5``, ``vgg``, ``mlp``, ``cifar_cnn``, ``resnet20``)."""
    if name == "lenet5":
        return lenet5(variant, seed=seed, **kwargs)
    if name == "vgg":
        return vgg(variant, seed=seed, **kwargs)
    if name == "mlp":
        return mlp(seed=seed, **kwargs)
    if name == "cifar_cnn":
        return cifar_cnn(seed=seed, **kwargs)
    if name == "resnet20":
        return resnet20(seed=seed, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


@functools.cache
def dense_fans(name) -> dict:
    """``{layer: (fan_in, fan_out)}`` of every Dense layer of the model ``name`` (default arguments),
    read from a model built for the purpose, so no table retypes the shapes. The build leaves the
    caller's state alone: no reseeding (``seed=None``), Python's random state (from which Keras draws
    default initializer seeds) restored, and in a thread of its own, since Keras keeps its layer-name
    counters and its global seed generator per thread (a later ``keras.Input`` keeps its name)."""
    found, state = {}, random.getstate()

    def build():
        try:
            model = build_model(name, seed=None)
            found.update({layer.name: tuple(int(n) for n in layer.kernel.shape) for layer in dense_layers(model)})
        except BaseException as exc:  # re-raised in the caller's thread
            found["error"] = exc

    try:
        thread = threading.Thread(target=build, name=f"dense_fans({name})")
        thread.start()
        thread.join()
    finally:
        random.setstate(state)
    if "error" in found:
        raise found["error"]
    return found


def parameter_table(model):
    """One row per layer with parameters: ``[{"model", "layer", "kind", "params"}]``."""
    rows = []
    for layer in all_layers(model):
        n = int(sum(int(keras.ops.size(w)) for w in layer.weights))
        if n:
            rows.append({"model": model.name, "layer": layer.name,
                         "kind": type(layer).__name__, "params": n})
    return rows

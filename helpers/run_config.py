"""What determines a training run: ``RunConfig`` (its fields, their validation and protocol
defaults, its cache key and file-name slug) and the optimizers a run can train with.

The optimizer registry maps a name to an ``OptimizerEntry``: the factory that builds the Keras
optimizer (in the shape of ``keras.optimizers.get``: a name in, an optimizer out,
``make_optimizer``) and the facts ``RunConfig`` resolves from (multi-objective or not, SGD-like
defaults, linear in the gradient). Adding an optimizer: its class in ``helpers.optimizers``, one
line in ``OPTIMIZER_REGISTRY``, a test; plots fall back to a default colour and its name as label
until ``helpers.plotting`` gives it its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import keras

from . import data as data_lib
from .cache import config_hash
from .learning_rate import PaperSchedule
from .models import LAMBDA_DENSE, PAPER_MODEL, dense_fans
from .objectives import SparsityObjective
from .optimizers import SCALARIZATIONS, SEPARATE, MAdam, MRMSprop, RMSpropKeras2, SMGD
from .validation import check_bool, check_choice, check_epochs, check_float, check_int, check_seed

# Bump when a change alters the numbers a configuration produces; old cache files then miss.
CACHE_VERSION = 1


@dataclass(frozen=True)
class OptimizerEntry:
    """An optimizer a run can train with.

    Attributes:
        build: ``build(learning_rate, config, penalty)`` -> the Keras optimizer; ``learning_rate`` a
            float or a schedule, ``config`` the resolved ``RunConfig``, ``penalty`` the
            ``SparsityObjective`` of the model (the second objective; None for a single-objective one).
        multi: multi-objective: trains the "multi" model on (loss, penalty); else the Keras
            baseline on the L1-regularised model.
        sgd_like: SGD-type defaults (learning rate 1e-2, momentum 0.9, decay lr/epochs under the
            paper's schedule) instead of the Adam/RMSprop-type ones (1e-3, no momentum, no decay).
        linear: the update is linear in the gradient, so the "joint" and "separate"
            scalarizations are the same update (resolved to "separate": one cache entry).
    """

    build: Callable
    multi: bool = False
    sgd_like: bool = False
    linear: bool = False


# name -> entry, in the order of every table and choice list: the paper's six first (multi-objective, then
# their single-objective baselines); a new optimizer goes after them.
OPTIMIZER_REGISTRY = {
    "smgd": OptimizerEntry(lambda lr, c, penalty: SMGD(lr, penalty, c.weights, momentum=c.momentum),
                           multi=True, sgd_like=True, linear=True),
    "madam": OptimizerEntry(lambda lr, c, penalty: MAdam(lr, penalty, c.weights, scalarization=c.scalarization),
                            multi=True),
    "mrmsprop": OptimizerEntry(lambda lr, c, penalty: MRMSprop(lr, penalty, c.weights, scalarization=c.scalarization),
                               multi=True),
    "sgd": OptimizerEntry(lambda lr, c, penalty: keras.optimizers.SGD(lr, momentum=c.momentum), sgd_like=True),
    "adam": OptimizerEntry(lambda lr, c, penalty: keras.optimizers.Adam(lr, epsilon=1e-7)),
    "rmsprop": OptimizerEntry(lambda lr, c, penalty: RMSpropKeras2(lr)),
}

OPTIMIZERS = tuple(OPTIMIZER_REGISTRY)
MULTI_OPTIMIZERS = tuple(name for name, entry in OPTIMIZER_REGISTRY.items() if entry.multi)
BASELINE_OPTIMIZERS = tuple(name for name, entry in OPTIMIZER_REGISTRY.items() if not entry.multi)
# "optimizer/scalarization" of every multi-objective optimizer whose scalarizations differ (a linear one
# has only "separate"): the learning-rate ablation's keys.
SCALARIZED_OPTIMIZERS = tuple(f"{name}/{scalarization}" for name, entry in OPTIMIZER_REGISTRY.items() if entry.multi
                              for scalarization in ((SEPARATE,) if entry.linear else SCALARIZATIONS))
PROTOCOLS = ("faithful", "clean")
LR_SCHEDULES = ("paper", "constant")
PAPER_MODELS = ("lenet5", "vgg")


def get_optimizer(name) -> OptimizerEntry:
    """The registered entry of the optimizer ``name``; ValueError naming the registered ones."""
    return OPTIMIZER_REGISTRY[check_choice("optimizer", name, OPTIMIZERS)]


def has_scalarization(name) -> bool:
    """Whether the optimizer ``name`` has a scalarization to name (multi-objective, not linear)."""
    entry = get_optimizer(name)
    return entry.multi and not entry.linear


def dense_sizes(model) -> dict:
    """``{dense layer: (kernel size, bias size)}`` of a paper model, from its layers' shapes."""
    return {name: (fan_in * fan_out, fan_out) for name, (fan_in, fan_out) in dense_fans(model).items()}


def glorot_limits(model):
    """Glorot-uniform draws a Dense kernel in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)):
    an ITP threshold >= a layer's limit zeroes all of it at initialization, and the network's output
    no longer depends on its input. ``{dense layer: limit}`` of a paper model."""
    return {name: math.sqrt(6.0 / (fan_in + fan_out)) for name, (fan_in, fan_out) in dense_fans(model).items()}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run. ``None`` fields are resolved from the
    paper's protocol (REPRODUCTION_NOTES.md §6.1) by ``resolved()``; the cache key uses resolved values.

    Attributes:
        dataset: ``mnist``, ``fashion_mnist`` or ``cifar10``.
        optimizer: ``smgd``, ``madam``, ``mrmsprop`` (multi-objective, on the "multi" model)
            or ``sgd``, ``adam``, ``rmsprop`` (Keras baselines on the L1-regularised model).
        itp: intra-training pruning of the dense layers (initial prune + every batch).
        epochs, batch_size, seed: as usual; batch 32 (MNIST) / 64 (CIFAR) by default.
        learning_rate: eta0; default 1e-3 for Adam-type and RMSprop-type, 1e-2 for SGD-type.
        weights: ``"min-norm"`` or fixed ``(lambda1, lambda2)`` (weighted sum; multi only).
        scalarization: how MAdam / MRMSprop combine the objectives: ``"separate"`` (the published
            code: one moment stream per objective) or ``"joint"`` (one stream on c1 g1 + c2 g2,
            which minimises the weighted sum; see ``helpers.optimizers``). SMGD is linear, so
            both are the same update and resolve to ``"separate"`` (one cache entry).
        lr_schedule: ``"paper"`` (logistic S(e) and decay as in the paper's table) or
            ``"constant"`` (the search scripts: no schedule, no decay).
        protocol: ``"faithful"`` reproduces the original code including its quirks (B3, B5,
            B11); ``"clean"`` fixes them.
        threshold: ITP threshold tau.
        train_subset: train on a seeded class-stratified subset of this size.
        validation_size: hold out the last N training images as a validation split (B22).
        eval_train: evaluate on the full training set every epoch (the paper's train curves).
        model: ``lenet5`` or ``vgg``; default: the paper's model for the dataset.
        momentum, decay, logistic, conv_l2_in_penalty, lambda_dense: protocol details,
            resolved from the protocol unless given.
    """

    dataset: str = "mnist"
    optimizer: str = "madam"
    itp: bool = True
    epochs: int = 30
    seed: int = 0
    learning_rate: float | None = None
    batch_size: int | None = None
    weights: str | tuple = "min-norm"
    scalarization: str = "separate"
    lr_schedule: str = "paper"
    protocol: str = "faithful"
    threshold: float = 1e-3
    train_subset: int | None = None
    validation_size: int = 0
    eval_train: bool = True
    model: str | None = None
    momentum: float | None = None
    decay: float | None = None
    logistic: bool | None = None
    conv_l2_in_penalty: bool | None = None
    lambda_dense: float | None = None

    @property
    def is_multi(self):
        return get_optimizer(self.optimizer).multi

    def resolved(self) -> "RunConfig":
        """Validate every field and fill the protocol defaults; raises before any work.

        Types are exact (``TypeError``: a bool field takes only bools, an int field ints but not
        bools, floats or strings); values must be finite and in range (``ValueError``), including
        the ones that would make a run meaningless: a train subset larger than the data, a batch
        larger than the training set, an ITP threshold that zeroes a whole dense layer at init.
        """
        dataset = data_lib.check_dataset_name(self.dataset)
        optimizer = check_choice("optimizer", self.optimizer, OPTIMIZERS)
        protocol = check_choice("protocol", self.protocol, PROTOCOLS)
        lr_schedule = check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        itp = check_bool("itp", self.itp)
        eval_train = check_bool("eval_train", self.eval_train)
        epochs = check_epochs("epochs", self.epochs)
        seed = check_seed("seed", self.seed)
        threshold = check_float("threshold (ITP)", self.threshold, minimum=0.0)
        cifar = dataset == "cifar10"
        model = check_choice("model", self.model, PAPER_MODELS, allow_none=True) or PAPER_MODEL.get(dataset, "lenet5")
        if (model == "vgg") != cifar:
            raise ValueError(f"model {model!r} does not fit dataset {dataset!r} (lenet5: 28x28 grey, vgg: CIFAR-10)")
        if itp:
            layer, limit = min(glorot_limits(model).items(), key=lambda item: item[1])
            if threshold >= limit:
                raise ValueError(f"threshold (ITP) must be < {limit:.4g} for {model}, got {threshold!r}: it would "
                                 f"prune every weight of {layer} at initialization (Glorot limit {limit:.4g})")
        available = data_lib.TRAIN_SIZES[dataset]
        validation_size = check_int("validation_size", self.validation_size, minimum=0, maximum=available - 1)
        train_subset = check_int("train_subset", self.train_subset, minimum=1, maximum=available - validation_size,
                                 allow_none=True)
        n_train = train_subset or available - validation_size

        weights = self.weights
        if isinstance(weights, str):
            if weights != "min-norm":
                raise ValueError(f"weights must be 'min-norm' or (lambda1, lambda2), got {weights!r}")
        else:
            if not isinstance(weights, (tuple, list)) or len(weights) != 2:
                raise ValueError(f"fixed weights must be two non-negative numbers, not both 0; got {self.weights!r}")
            weights = tuple(check_float(f"weights[{i}]", w, minimum=0.0) for i, w in enumerate(weights))
            if sum(weights) == 0:
                raise ValueError(f"fixed weights must be two non-negative numbers, not both 0; got {self.weights!r}")
            if not OPTIMIZER_REGISTRY[optimizer].multi:
                raise ValueError(f"fixed weights are for the multi-objective optimizers, not {optimizer!r}")

        check_choice("scalarization", self.scalarization, SCALARIZATIONS)
        if self.scalarization != SEPARATE and not OPTIMIZER_REGISTRY[optimizer].multi:
            raise ValueError(f"scalarization is for the multi-objective optimizers, not {optimizer!r}")
        # An optimizer linear in the gradient (SMGD): "joint" and "separate" are the same update.
        scalarization = SEPARATE if OPTIMIZER_REGISTRY[optimizer].linear else self.scalarization

        entry = OPTIMIZER_REGISTRY[optimizer]
        sgd_like = entry.sgd_like
        learning_rate = check_float("learning_rate", self.learning_rate, minimum=0.0, min_open=True, allow_none=True)
        if learning_rate is None:
            learning_rate = 1e-2 if sgd_like else 1e-3

        batch_size = check_int("batch_size", self.batch_size, minimum=1, allow_none=True)
        if batch_size is None:
            batch_size = 64 if cifar else 32
            # B3: the original's unpruned CIFAR sgd/rms runs forgot batch_size and got 32.
            if cifar and protocol == "faithful" and not itp and optimizer in ("sgd", "rmsprop"):
                batch_size = 32
        if batch_size > n_train:
            raise ValueError(f"batch_size must be <= the {n_train} training images, got {batch_size}")

        logistic = check_bool("logistic", self.logistic, allow_none=True)
        decay = check_float("decay", self.decay, minimum=0.0, allow_none=True)
        momentum = check_float("momentum", self.momentum, minimum=0.0, maximum=1.0, max_open=True, allow_none=True)
        conv_l2 = check_bool("conv_l2_in_penalty", self.conv_l2_in_penalty, allow_none=True)
        lambda_dense = check_float("lambda_dense", self.lambda_dense, minimum=0.0, allow_none=True)
        if lr_schedule == "constant":
            logistic = False if logistic is None else logistic
            decay = 0.0 if decay is None else decay
        else:
            if logistic is None:
                # B5: the original gives CIFAR SMGD no logistic schedule, only decay.
                logistic = not (cifar and optimizer == "smgd" and protocol == "faithful")
            if decay is None:
                decay = learning_rate / epochs if sgd_like else 0.0
        momentum = momentum if momentum is not None else (0.9 if sgd_like else 0.0)
        if conv_l2 is None:
            conv_l2 = protocol == "faithful"  # B11
        if lambda_dense is None:
            lambda_dense = 0.0 if OPTIMIZER_REGISTRY[optimizer].multi else LAMBDA_DENSE[model]
        return dataclasses.replace(
            self, dataset=dataset, optimizer=optimizer, protocol=protocol, lr_schedule=lr_schedule, itp=itp,
            eval_train=eval_train, epochs=epochs, seed=seed, train_subset=train_subset,
            validation_size=validation_size, model=model, weights=weights, scalarization=scalarization,
            learning_rate=float(learning_rate), batch_size=batch_size, logistic=bool(logistic), decay=float(decay),
            momentum=float(momentum), conv_l2_in_penalty=bool(conv_l2), lambda_dense=float(lambda_dense),
            threshold=float(threshold))

    def to_dict(self):
        d = dataclasses.asdict(self)
        if isinstance(d["weights"], tuple):
            d["weights"] = list(d["weights"])
        return d

    def key(self):
        """Stable hash of the resolved configuration (and of CACHE_VERSION)."""
        config = self.resolved().to_dict()
        if config["scalarization"] == SEPARATE:
            del config["scalarization"]  # the field came later: separate runs keep their keys
        return config_hash(config, CACHE_VERSION)

    def slug(self):
        c = self.resolved()
        weights = "" if c.weights == "min-norm" else f"-w{c.weights[1]:.3g}"
        if c.scalarization != SEPARATE:
            weights += f"-{c.scalarization}"
        itp = "itp" if c.itp else "noitp"
        return f"{c.dataset}-{c.optimizer}{weights}-{itp}-e{c.epochs}-s{c.seed}"


def learning_rate_schedule(config: RunConfig, steps_per_epoch: int):
    """The learning rate of a resolved config: the paper's ``PaperSchedule`` when it has a logistic
    phase or a decay, else the constant eta0 (a float)."""
    c = config
    if c.logistic or c.decay:
        return PaperSchedule(c.learning_rate, steps_per_epoch, c.epochs, decay=c.decay, logistic=c.logistic)
    return c.learning_rate


def make_optimizer(config: RunConfig, model, steps_per_epoch: int = None, learning_rate=None):
    """The optimizer a resolved config asks for (``OPTIMIZER_REGISTRY``), with the paper's
    learning-rate schedule (``learning_rate_schedule``) unless ``learning_rate`` is given."""
    if learning_rate is None:
        learning_rate = learning_rate_schedule(config, steps_per_epoch)
    entry = get_optimizer(config.optimizer)
    penalty = SparsityObjective.from_model(model, conv_l2=config.conv_l2_in_penalty) if entry.multi else None
    return entry.build(learning_rate, config, penalty)

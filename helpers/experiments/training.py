"""The pre-trained networks of notebooks 06-08: trained once, their weights cached."""

from __future__ import annotations

import time

import keras
import numpy as np

from .. import data as data_lib
from ..cache import ResultCache, config_hash
from ..callbacks import Diverged, NonFiniteGuard, non_finite_reason
from ..files import RecordError, atomic_write, check_record, quarantine, read_json, write_json
from ..models import MODELS, build_model
from ..runner import RunFailedError, guarded_fit
from ..validation import Bool, Choice, Epochs, Float, Int, Optional, Seed, check_int, validated

# The arguments of trained_model that procedures pass on (BudgetPruning checks them when built).
TRAINING_SPECS = dict(epochs=Epochs(), batch_size=Int(1), learning_rate=Float(0.0, min_open=True), seed=Seed(),
                      train_subset=Optional(Int(1)))
# The resumable recipe's options (trained_model), optional in a procedure's pre-training arguments.
RECIPE_SPECS = dict(augment=Bool(), lr_schedule=Choice("constant", "cosine"))


def weights_name(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None, model_kwargs=None,
                 optimizer="adam", data_kwargs=None, augment=False, lr_schedule="constant"):
    """The file name of ``trained_model``'s weights in the cache's ``models/``: a hash of the
    arguments as given."""
    config = dict(model=model_name, dataset=dataset, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, train_subset=train_subset, model_kwargs=model_kwargs or {})
    if optimizer != "adam" or data_kwargs:  # keeps the keys of existing Adam caches unchanged
        config.update(optimizer=optimizer, data_kwargs=data_kwargs or {})
    if augment or lr_schedule != "constant":  # the resumable recipe; the same rule keeps older keys
        config.update(augment=augment, lr_schedule=lr_schedule)
    return f"{model_name}-{dataset}-{config_hash(config)}.weights.h5"


@validated(model_name=Choice(*MODELS), **TRAINING_SPECS, **RECIPE_SPECS, recompute=Bool(), progress=Bool(),
           optimizer=Choice("adam", "sgd"))
def trained_model(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None,
                  model_kwargs=None, recompute=False, progress=True, optimizer="adam", data_kwargs=None,
                  augment=False, lr_schedule="constant"):
    """Train a network (Adam, or SGD with momentum 0.9) on sparse cross-entropy, or load its
    cached weights.

    Weights are cached in the ``models/`` folder of ``helpers.cache.ResultCache`` (ignored by git:
    models are not committed) under ``weights_name``; returns ``(model, data)``.

    ``augment`` (random 4-pixel crops and horizontal flips, ``data.augment_crop_flip``) or
    ``lr_schedule="cosine"`` (the rate decays to 0 over the run) select the *resumable recipe*
    for trainings longer than a session: one epoch at a time, the epoch's data order and
    augmentation drawn from ``(seed, epoch)`` alone, and after every epoch a checkpoint (weights
    and optimizer state) in the cache's ``partial/`` (committed between sessions), from which a
    later call resumes exactly where it stopped: the same weights as an uninterrupted run. Without
    them the network is trained by one ``fit`` call, as every cached network was.
    """
    dataset = data_lib.check_dataset_name(dataset)
    for name, value in (("model_kwargs", model_kwargs), ("data_kwargs", data_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{name} must be None or a dict, got {value!r} ({type(value).__name__})")
    validation_size = (data_kwargs or {}).get("validation_size", 0)
    available = data_lib.TRAIN_SIZES[dataset] - check_int("data_kwargs['validation_size']", validation_size, 0)
    if train_subset is not None and train_subset > available:
        raise ValueError(f"train_subset must be <= the {available} training images of {dataset}, got {train_subset}")
    if batch_size > (train_subset or available):
        raise ValueError(f"batch_size must be <= the {train_subset or available} training images, got {batch_size}")
    store = ResultCache()
    name = weights_name(model_name, dataset, epochs, batch_size, learning_rate, seed, train_subset, model_kwargs,
                        optimizer, data_kwargs, augment, lr_schedule)
    data = data_lib.load_dataset(dataset, train_subset=train_subset, seed=seed, **(data_kwargs or {}))
    resumable = augment or lr_schedule != "constant"
    steps = epochs * -(-len(data.x_train) // batch_size)

    def compiled():
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps) if lr_schedule == "cosine" else learning_rate
        model = build_model(model_name, seed=seed, **(model_kwargs or {}))
        opt = keras.optimizers.Adam(rate) if optimizer == "adam" else keras.optimizers.SGD(rate, momentum=0.9)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    model = compiled()
    loaded = None if recompute else store.load_weights(model, name)
    if loaded:
        return model, data
    if loaded is False:  # an unreadable file, moved aside: trained again, on a fresh network
        model = compiled()
    store.check_writable("models", *(("partial",) if resumable else ()))  # before training, not after
    if resumable:
        _train_resumable(model, data, store, name, epochs, batch_size, seed, augment, recompute, progress)
    else:
        keras.utils.set_random_seed(seed)
        # A diverged network is never cached (nor returned): RunFailedError.
        guarded_fit(model, f"{model_name}-{dataset}", data.x_train, data.y_train, batch_size=batch_size,
                    epochs=epochs, verbose=2 if progress else 0)
    store.save_weights(model, name)
    if resumable:
        _remove_checkpoints(store, name)
    return model, data


def _checkpoint_paths(store, name):
    """The checkpoint's record and the weights files of ``trained_model``'s resumable recipe."""
    stem = name.removesuffix(".weights.h5")
    return store.path("partial", f"{stem}.json"), sorted((store.root / "partial").glob(f"{stem}-e*.weights.h5"))


def _remove_checkpoints(store, name):
    meta, weights = _checkpoint_paths(store, name)
    for path in [meta, *weights]:
        path.unlink(missing_ok=True)


def _train_resumable(model, data, store, name, epochs, batch_size, seed, augment, recompute, progress):
    """``trained_model``'s resumable recipe (see there). The checkpoint is a record
    ``partial/<stem>.json`` naming the epochs done and the weights file of that epoch
    (``<stem>-e<k>.weights.h5``, the optimizer's state included): the weights are written first,
    then the record (atomically), then older weights removed, so a process killed at any point
    leaves a record that names a whole file of the epoch it states."""
    meta_path, _ = _checkpoint_paths(store, name)
    stem = name.removesuffix(".weights.h5")
    done, history = 0, []
    if recompute:
        _remove_checkpoints(store, name)
    elif meta_path.exists():
        def schema(meta):
            check_record(isinstance(meta["epochs_done"], int) and 0 < meta["epochs_done"] < epochs
                         and meta["weights"] == f"{stem}-e{meta['epochs_done']}.weights.h5"
                         and isinstance(meta["history"], list) and len(meta["history"]) == meta["epochs_done"],
                         f"the checkpoint must name 1..{epochs - 1} epochs done, their weights file and history")

        meta = read_json(meta_path, ("epochs_done", "weights", "history"), check=schema)  # None: moved aside
        if meta is not None:
            initial = model.get_weights()
            weights = store.path("partial", meta["weights"])
            try:
                model.optimizer.build(model.trainable_variables)  # its slots must exist to be loaded
                model.load_weights(weights)
                reason = non_finite_reason(model, {})
                if reason:
                    raise RecordError(f"{reason}: a checkpoint is written only from finite weights")
                done, history = meta["epochs_done"], meta["history"]
            except Exception as exc:  # unreadable, foreign or not finite: moved aside, trained from the start
                quarantine(weights, str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}")
                quarantine(meta_path, "its weights file could not be restored")
                model.set_weights(initial)  # never half-loaded: the fresh network and optimizer
                for variable in model.optimizer.variables:
                    variable.assign(np.zeros(variable.shape, variable.dtype))
        if done and progress:
            print(f"{stem}: resuming after epoch {done} of {epochs} from its checkpoint", flush=True)
    for epoch in range(done, epochs):
        started = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])  # the epoch's order and augmentation: (seed, epoch) alone
        order = rng.permutation(len(data.x_train))
        x = data.x_train[order]
        x = data_lib.augment_crop_flip(x, rng) if augment else x
        try:
            fit = model.fit(x, data.y_train[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                            callbacks=[NonFiniteGuard()])
        except Diverged as exc:  # a diverged network is never cached, nor checkpointed; a retry starts afresh
            _remove_checkpoints(store, name)
            raise RunFailedError(stem, exc.reason, epoch + 1) from None
        logs = {key: float(values[-1]) for key, values in fit.history.items()}
        history.append({**logs, "seconds": time.perf_counter() - started})
        if progress:
            print(f"{stem}: epoch {epoch + 1}/{epochs} loss {logs['loss']:.4f} accuracy {logs.get('accuracy', 0):.4f} "
                  f"({history[-1]['seconds']:.0f} s)", flush=True)
        if epoch + 1 < epochs:
            weights = f"{stem}-e{epoch + 1}.weights.h5"
            atomic_write(store.path("partial", weights), model.save_weights, suffix=".weights.h5")
            write_json(meta_path, {"epochs_done": epoch + 1, "weights": weights, "history": history})
            for old in _checkpoint_paths(store, name)[1]:
                if old.name != weights:
                    old.unlink(missing_ok=True)
    # The measured epochs stay beside the weights (``pretraining_history``): the finished run has
    # no checkpoint left to hold them.
    write_json(store.path("models", f"{stem}.history.json"), {"history": history})


def pretraining_history(name):
    """The per-epoch history (loss, accuracy, seconds) of a network ``trained_model`` trained with
    the resumable recipe on this machine, or None (cache key ``name`` from ``weights_name``)."""
    path = ResultCache().path("models", f"{name.removesuffix('.weights.h5')}.history.json")
    stored = read_json(path, ("history",))  # None if missing or unreadable (moved aside)
    return stored["history"] if stored else None

"""The pre-trained networks of notebooks 06-08: trained once, their weights cached."""

from __future__ import annotations

from ..validation import Bool, Choice, Epochs, Float, Int, Optional, Seed, check_int, check_parameters

# The arguments of trained_model that procedures pass on (BudgetPruning checks them when built).
TRAINING_SPECS = dict(epochs=Epochs(), batch_size=Int(1), learning_rate=Float(0.0, min_open=True), seed=Seed(),
                      train_subset=Optional(Int(1)))


def weights_name(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None, model_kwargs=None,
                 optimizer="adam", data_kwargs=None):
    """The file name of ``trained_model``'s weights in the cache's ``models/``: a hash of the
    arguments as given."""
    from ..cache import config_hash

    config = dict(model=model_name, dataset=dataset, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, train_subset=train_subset, model_kwargs=model_kwargs or {})
    if optimizer != "adam" or data_kwargs:  # keeps the keys of existing Adam caches unchanged
        config.update(optimizer=optimizer, data_kwargs=data_kwargs or {})
    return f"{model_name}-{dataset}-{config_hash(config)}.weights.h5"


def trained_model(model_name, dataset, epochs, batch_size, learning_rate, seed=0, train_subset=None,
                  model_kwargs=None, recompute=False, progress=True, optimizer="adam", data_kwargs=None):
    """Train a network (Adam, or SGD with momentum 0.9) on sparse cross-entropy, or load its
    cached weights.

    Weights are cached in the ``models/`` folder of ``helpers.cache.ResultCache`` (ignored by git:
    models are not committed) under ``weights_name``; returns ``(model, data)``.
    """
    import keras

    from .. import data as data_lib
    from ..cache import ResultCache
    from ..models import MODELS, build_model
    from ..runner import RunFailedError, non_finite_reason

    checked = check_parameters(
        dict(model_name=model_name, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
             train_subset=train_subset, recompute=recompute, progress=progress, optimizer=optimizer),
        dict(model_name=Choice(*MODELS), **TRAINING_SPECS, recompute=Bool(), progress=Bool(),
             optimizer=Choice("adam", "sgd")))
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
    del checked  # the cache key hashes the arguments as given, as it always has
    store = ResultCache()
    name = weights_name(model_name, dataset, epochs, batch_size, learning_rate, seed, train_subset, model_kwargs,
                        optimizer, data_kwargs)
    data = data_lib.load_dataset(dataset, train_subset=train_subset, seed=seed, **(data_kwargs or {}))
    model = build_model(model_name, seed=seed, **(model_kwargs or {}))
    opt = (keras.optimizers.Adam(learning_rate) if optimizer == "adam"
           else keras.optimizers.SGD(learning_rate, momentum=0.9))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loaded = None if recompute else store.load_weights(model, name)
    if loaded:
        return model, data
    if loaded is False:  # an unreadable file, moved aside: trained again, on a fresh network
        model = build_model(model_name, seed=seed, **(model_kwargs or {}))
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    store.check_writable("models")  # before training, not after
    keras.utils.set_random_seed(seed)
    fit = model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, verbose=2 if progress else 0)
    reason = non_finite_reason(model, {"loss": fit.history["loss"][-1]})
    if reason:  # a diverged network is never cached (nor returned)
        raise RunFailedError(f"{model_name}-{dataset}", reason, epochs)
    store.save_weights(model, name)
    return model, data

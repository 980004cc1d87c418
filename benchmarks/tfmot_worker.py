"""tfmot side of the benchmarks, in its own process (``TF_USE_LEGACY_KERAS=1``, tf_keras).

Usage (the benchmark scripts call it): ``python benchmarks/tfmot_worker.py TASK '{json kwargs}'``;
prints one JSON line. Tasks: ``overhead`` (seconds per epoch of plain tf_keras Adam and of
``prune_low_magnitude`` with PolynomialDecay at a given frequency) and ``gmp`` (train with tfmot's
gradual magnitude pruning to a final sparsity and report test accuracy and dense sparsity).
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

from helpers.data import load_dataset  # noqa: E402  (numpy only: no Keras 3 import)

DENSE = ("denselayer1", "denselayer2", "denselayer3")


def lenet5(seed, conv_l2=0.0, initial_weights=None):
    """The paper's LeNet-5 variant (60,074 parameters), as ``helpers.models.lenet5("multi")`` builds
    it when ``conv_l2`` is its L2 factor on the conv kernels; ``initial_weights``: a .npz of
    ``{layer}:{index}`` arrays (``frontier.save_initial_weights``) replacing tf_keras's init."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    reg = keras.regularizers.L2(conv_l2) if conv_l2 > 0 else None
    inputs = keras.Input((28, 28, 1))
    x = L.Conv2D(6, 3, activation="relu", kernel_regularizer=reg, name="conv1")(inputs)
    x = L.AveragePooling2D(2, name="pool1")(x)
    x = L.Conv2D(16, 3, activation="relu", kernel_regularizer=reg, name="conv2")(x)
    x = L.AveragePooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(120, activation="relu", name="denselayer1")(x)
    x = L.Dense(84, activation="relu", name="denselayer2")(x)
    outputs = L.Dense(10, activation="softmax", name="denselayer3")(x)
    model = keras.Model(inputs, outputs)
    if initial_weights:
        arrays = np.load(initial_weights)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights([arrays[f"{layer.name}:{i}"] for i in range(len(layer.weights))])
    return model


def prune_dense(model, schedule):
    """``prune_low_magnitude`` on the Dense layers only (conv layers are not pruned by ITP either)."""
    def clone(layer):
        if layer.name in DENSE:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer
    return keras.models.clone_model(model, clone_function=clone)


def overhead(epochs, seed=0, batch_size=32, final_sparsity=0.95, train_subset=None):
    """Seconds per epoch of plain tf_keras Adam and of tfmot GMP at frequency 1 and 100, the three
    taking turns epoch by epoch after one untimed warm-up epoch each."""
    data = load_dataset("mnist", train_subset=train_subset)
    steps = (epochs + 1) * int(np.ceil(len(data.x_train) / batch_size))
    runs = {}
    for name, frequency in (("adam", None), ("tfmot-gmp-f1", 1), ("tfmot-gmp-f100", 100)):
        model, callbacks = lenet5(seed), []
        if frequency:
            schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, final_sparsity, 0, steps, frequency=frequency)
            model = prune_dense(model, schedule)
            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        runs[name] = (model, callbacks)
    times = {name: [] for name in runs}
    for round_ in range(epochs + 1):
        for name, (model, callbacks) in runs.items():
            start = time.perf_counter()
            model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks)
            if round_:
                times[name].append(time.perf_counter() - start)
    return {"epoch_seconds": times, "tensorflow": tf.__version__, "tfmot": tfmot.__version__}


def gmp(final_sparsity, epochs, seed=0, batch_size=32, frequency=100, end_fraction=0.7, train_subset=None,
        initial_weights=None, conv_l2=0.0, weights_out=None, trace=None, **fair):
    """tfmot GMP; epoch by epoch on ``common.epoch_order`` (``shuffle=False``), the order ours sees."""
    from common import epoch_order, gmp_end_step

    data = load_dataset("mnist", train_subset=train_subset)
    end_step = gmp_end_step(epochs, len(data.x_train), batch_size, end_fraction)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, final_sparsity, 0, end_step, frequency=frequency)
    model = prune_dense(lenet5(seed, conv_l2, initial_weights), schedule)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(seed)
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    pruned = [model.get_layer(f"prune_low_magnitude_{name}").pruning_vars[0] for name in DENSE]  # (w, mask, t)
    kept = []  # with ``trace``: the kept count of every dense kernel after every batch
    if trace:
        callbacks.append(keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: kept.append(
            [int(np.count_nonzero(mask.numpy())) for _, mask, _ in pruned])))
    for epoch in range(epochs):
        order = epoch_order(seed, epoch, len(data.x_train))
        model.fit(data.x_train[order], data.y_train[order], batch_size=batch_size, initial_epoch=epoch,
                  epochs=epoch + 1, shuffle=False, verbose=0, callbacks=callbacks)
        if trace:  # the masked dense kernels after every epoch (UpdatePruningStep masked them), for gmp_trace.py
            np.savez(f"{trace}-{epoch + 1:02d}.npz", **{name: w.numpy() for name, (w, _, _) in zip(DENSE, pruned)})
    if trace:
        np.save(f"{trace}-kept.npy", np.array(kept))
    model = tfmot.sparsity.keras.strip_pruning(model)
    if not all(np.all(np.isfinite(w)) for w in model.get_weights()):  # the worker fails: nothing is cached
        raise FloatingPointError("tfmot GMP diverged: non-finite weights")
    if weights_out:
        np.savez(weights_out, **{f"{layer.name}:{i}": w for layer in model.layers
                                 for i, w in enumerate(layer.get_weights())})
    accuracy = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), -1) == data.y_test))
    kernels = [model.get_layer(name).kernel.numpy() for name in DENSE]
    sparsity = 1 - sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)
    return {"test_acc": accuracy, "dense_sparsity": float(sparsity)}


if __name__ == "__main__":
    task, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = {"overhead": overhead, "gmp": gmp}[task](**kwargs)
    print(json.dumps(result))

"""Run the pruning API on one Keras backend (``KERAS_BACKEND`` is set by the caller) from fixed
initial weights and data, and save what it produced: ``python tests/backend_worker.py OUT.npz INIT.npz``.
tests/test_backends.py runs it under TensorFlow and JAX and compares."""

import os
import sys

import keras
import numpy as np

from helpers import pruning


def residual_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="block")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="classifier")(x))


def main(out_path, init_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 3), dtype="float32"), rng.integers(0, 4, 64)
    model = residual_cnn()
    if os.path.exists(init_path):
        init = np.load(init_path)
        model.set_weights([init[f"w{i}"] for i in range(len(init.files))])
    else:  # the first backend writes the initial weights every backend starts from
        np.savez(init_path, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    start = model.get_weights()
    out = {}
    # gradual magnitude pruning during fit
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    gmp = pruning.GradualMagnitudePruning(model, final_sparsity=0.7, end_step=6, frequency=2)
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[gmp], verbose=0, shuffle=False)
    out["gmp_hidden"] = model.get_layer("hidden").kernel.numpy()
    out["gmp_block"] = model.get_layer("block").kernel.numpy()
    # group masks kept during fit, with ITP on top
    pruning.detach_masks(model)
    model.set_weights(start)
    masks = pruning.masks_for(model, 0.5, granularity="filter")
    pruning.attach_masks(model, masks)
    pruning.enable_itp(model, threshold=1e-2)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    out["masked_pruned_nonzero"] = np.array(sum(
        int(np.count_nonzero(np.asarray(model.get_layer(k.split("/")[0]).weights[0].numpy())[~m]))
        for k, m in masks.items() if k.endswith("/kernel")))
    out["stem_mask"] = masks["stem/kernel"]
    # strip and compact
    plain = pruning.strip(model)
    small, report = pruning.compact(plain)
    out["compact_diff"] = np.array(np.abs(small.predict_on_batch(x) - plain.predict_on_batch(x)).max())
    out["compact_kept"] = np.array([row["kept"] for row in report])
    out["compact_outputs"] = small.predict_on_batch(x)
    # masks replaced in place, as the budget search does every episode: the next fit holds the new
    # ones (TensorFlow keeps its traced step, which reads the mask variables; JAX retraces)
    model.set_weights(start)
    fewer = pruning.masks_for(model, 0.25, granularity="filter")
    pruning.attach_masks(model, fewer)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    kernels = {k: model.get_layer(k.split("/")[0]).weights[0].numpy() for k in fewer if k.endswith("/kernel")}
    out["replaced_pruned_nonzero"] = np.array(sum(int(np.count_nonzero(w[~fewer[k]])) for k, w in kernels.items()))
    out["replaced_freed_nonzero"] = np.array(sum(int(np.count_nonzero(w[fewer[k] & ~masks[k]]))
                                                 for k, w in kernels.items()))
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

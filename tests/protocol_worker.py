"""Run notebook 03's CIFAR-10 protocol path on the Keras backend the caller chose (``KERAS_BACKEND``)
on tiny parameters, into a given cache, and say what it wrote:
``python tests/protocol_worker.py CACHE_DIR OUT.json``. The configs are built exactly as notebook
03 builds them (``experiments.smgd_comparison("cifar10", ...)``) and trained by ``run_sweep``, so
this is what ``KERAS_BACKEND=jax papermill notebooks/03_smgd.ipynb ... -p dataset cifar10`` runs on
a GPU. tests/test_backends.py runs it under JAX and reads the records back on TensorFlow."""

import json
import os
import sys


class _NoTensorFlow:
    """With ``BLOCK_TENSORFLOW=1``: TensorFlow cannot be imported, as on the GPU machines, which
    have JAX and not TensorFlow (Keras then skips its optional TensorFlow parts)."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (BLOCK_TENSORFLOW=1)")
        return None


if os.environ.get("BLOCK_TENSORFLOW") == "1":
    sys.meta_path.insert(0, _NoTensorFlow())

import keras  # noqa: E402

from helpers import experiments  # noqa: E402
from helpers.sweep import run_sweep  # noqa: E402

# Notebook 03's paper optimizers for CIFAR-10 that the paper-protocol runs use: SMGD (min-norm, no
# logistic schedule, B5), MRMSprop (min-norm, two streams) and the RMSprop + L1 baseline (Keras 2's
# RMSprop); ITP on, one epoch on a stratified subset.
OPTIMIZERS = ["smgd", "mrmsprop", "rmsprop"]


def main(cache_dir, out_path):
    configs = experiments.smgd_comparison("cifar10", OPTIMIZERS, "on", 1, (0,), train_subset=128)
    results = run_sweep(configs, cache_dir=cache_dir, progress=False, check_versions=False)
    summary = experiments.comparison_summary(results)
    out = {"backend": keras.backend.backend(), "keys": [r.key for r in results],
           "slugs": [r.config.slug() for r in results], "files": [r.path.name for r in results],
           "from_cache": [r.from_cache for r in results], "run_backends": [r.backend for r in results],
           "summary_backend": summary["backend"].tolist(), "label": experiments.backend_label(results),
           "test_acc": summary["test_acc"].tolist(), "nnz_dense": summary["nnz_dense"].tolist(),
           "tensorflow_imported": "tensorflow" in sys.modules}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

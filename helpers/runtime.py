"""Process-level set-up and versions: a quiet TensorFlow import, deterministic ops, the versions a
run is made under and the check that cached runs were made under the running ones."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings


@contextlib.contextmanager
def _stderr_silenced():
    """Silence file descriptor 2 (C++ logging ignores Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def quiet_import():
    """Import Keras (and TensorFlow, if it is the backend) without the C++ start-up chatter.

    TensorFlow 2.21 logs oneDNN and CUDA notices at import whatever TF_CPP_MIN_LOG_LEVEL
    says; notebooks call this first so that their stored outputs stay clean and stable.
    Returns the keras module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import keras
        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401
    return keras


def enable_determinism():
    """Deterministic ops on the TensorFlow backend; seeds are set where models are built."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def environment() -> dict:
    """The versions a run is made under, recorded in every cached run."""
    import keras
    import numpy as np

    env = {"keras": keras.__version__, "backend": keras.backend.backend(), "numpy": np.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    return env


# Versions whose change can move the numbers (cpu_count and the patch level of Python cannot).
COMPARED_VERSIONS = ("keras", "backend", "tensorflow", "numpy", "machine")


class EnvironmentMismatchWarning(UserWarning):
    """Cached runs were made under other versions than the running ones."""


def check_environments(results, warn=True) -> list:
    """Warn once if any of ``results`` was made under other versions than the running ones.

    Returns ``[(slug, {name: (recorded, running)})]`` for the runs that differ; only versions
    recorded by both are compared (older cache files lack ``tensorflow`` and ``numpy``).
    """
    running = environment()
    running["python"] = ".".join(platform.python_version_tuple()[:2])
    differing = []
    for r in results:
        recorded = dict(r.environment or {})
        if "python" in recorded:
            recorded["python"] = ".".join(str(recorded["python"]).split(".")[:2])
        diff = {k: (recorded[k], running[k]) for k in (*COMPARED_VERSIONS, "python")
                if k in recorded and k in running and str(recorded[k]) != str(running[k])}
        if diff:
            differing.append((r.config.slug(), diff))
    if differing and warn:
        kinds = sorted({f"{k} {a} (running {b})" for _, d in differing for k, (a, b) in d.items()})
        warnings.warn(f"{len(differing)} of {len(results)} cached runs were made under other versions: "
                      f"{', '.join(kinds)}; e.g. {differing[0][0]}. Their numbers may differ slightly from a rerun "
                      f"here (recompute=True retrains).", EnvironmentMismatchWarning, stacklevel=2)
    return differing

"""Process-level set-up: a quiet TensorFlow import and deterministic ops."""

from __future__ import annotations

import contextlib
import os
import sys


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

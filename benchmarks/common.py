"""Shared pieces of the benchmark scripts: where results go, the tfmot worker process, timing.

Run every script from the repository root, e.g. ``python benchmarks/training_overhead.py``.
tfmot cannot share a process with Keras 3 (importing it switches the process to legacy Keras),
so everything tfmot does runs in ``tfmot_worker.py``, started with ``TF_USE_LEGACY_KERAS=1``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `helpers` without installing

from helpers.files import atomic_write  # noqa: E402
from helpers.paths import project_root  # noqa: E402

RESULTS = project_root() / "results" / "benchmarks"


def write_csv(name, rows):
    """Write ``rows`` (a list of dicts) to ``results/benchmarks/<name>`` and return the path."""
    path = RESULTS / name

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)
    return path


def run_tfmot_worker(task, **kwargs):
    """Run ``tfmot_worker.py <task>`` in its own process under legacy Keras; returns its JSON."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(Path(__file__).with_name("tfmot_worker.py")), task, json.dumps(kwargs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tfmot worker failed ({task}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def epoch_order(seed, epoch, n):
    """The order in which both GMP implementations see the ``n`` training images in ``epoch``."""
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


def gmp_end_step(epochs, n_train, batch_size=32, end_fraction=0.7):
    """The step at which both GMP implementations reach the final sparsity: ``end_fraction`` of
    all training steps."""
    import math

    return int(end_fraction * (epochs * math.ceil(n_train / batch_size)))  # grouped as the runs were cached


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])

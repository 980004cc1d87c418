"""Peak memory of a notebook's kernel: mybinder.org gives a session about 2 GB (README.md, "Colab and Binder").

Each notebook runs on its default parameters (from the cache: nothing is trained when the cache is
complete) with papermill in a fresh Python process; its outputs and figures go to a temporary
folder (``$MOPRUNE_OUTPUT_DIR``), never over the committed ones. The kernel is that process's only
child, so ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` there is the kernel's peak resident set size.

Run from the repository root::

    python benchmarks/notebook_memory.py notebooks/02_data_and_models.ipynb [more notebooks]

Prints one line per notebook: its name, the kernel's peak RSS (MiB) and the wall time (s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in the fresh process: execute the notebook into a temporary file, then print the peak RSS of
# its children (the kernel), in KiB on Linux.
_CHILD = """
import json, resource, sys
from helpers.notebooks.execution import execute
execute(sys.argv[1], sys.argv[2], parameters=json.loads(sys.argv[3]))
print("KERNEL_MAXRSS_KIB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def kernel_peak_mib(notebook, parameters=None, timeout=1800, env=None):
    """``(peak RSS of the kernel in MiB, seconds)`` of running ``notebook`` in a fresh process."""
    notebook = Path(notebook).resolve()
    with tempfile.TemporaryDirectory(prefix="notebook-memory-") as tmp:
        environment = dict(os.environ if env is None else env, MOPRUNE_OUTPUT_DIR=str(Path(tmp) / "outputs"))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _CHILD, str(notebook), str(Path(tmp) / notebook.name),
                               json.dumps(parameters or {})], cwd=ROOT, env=environment, capture_output=True,
                              text=True, timeout=timeout)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{notebook.name} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    [line] = [line for line in done.stdout.splitlines() if line.startswith("KERNEL_MAXRSS_KIB ")]
    return int(line.split()[1]) / 1024, seconds


def main(argv=None):
    notebooks = (argv if argv is not None else sys.argv[1:]) or [str(ROOT / "notebooks" / "02_data_and_models.ipynb")]
    for notebook in notebooks:
        peak, seconds = kernel_peak_mib(notebook)
        print(f"{Path(notebook).name}: kernel peak RSS {peak:,.0f} MiB, {seconds:.0f} s")


if __name__ == "__main__":
    main()

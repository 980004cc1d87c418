"""The public pruning API on a model that is not one of the paper's: README.md's example runs as
written, masks survive a .keras round trip, and strip() gives a model that loads where helpers
was never imported."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import pruning

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "# pruning-example"


def readme_example():
    """The fenced python block of README.md that starts with the marker comment."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    matching = [block for block in blocks if block.startswith(MARKER)]
    assert len(matching) == 1, f"README.md needs exactly one python block starting with {MARKER!r}"
    return matching[0]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        namespace = {"__name__": "readme_example"}
        exec(compile(readme_example(), str(README), "exec"), namespace)
    finally:
        os.chdir(cwd)
    namespace["folder"] = folder
    return namespace


def test_readme_example_runs_and_does_what_it_says(example):
    model, reloaded = example["model"], example["reloaded"]
    masks = pruning.current_masks(model)
    assert {"stem/kernel", "block/kernel", "hidden/kernel"} <= set(masks)
    for path, mask in masks.items():
        np.testing.assert_array_equal(pruning.current_masks(reloaded)[path], mask)
        value = next(v for v in model.weights if v.path == path).numpy()
        assert np.all(value[~mask] == 0)
    assert model.get_layer("hidden").kernel.constraint.threshold == 1e-3  # ITP and mask together
    assert reloaded.get_layer("hidden").kernel.constraint.threshold == 1e-3
    assert [row["kept"] for row in example["report"]] == [4, 4, 8, 4]  # through the residual Add
    assert example["small"].count_params() < example["plain"].count_params()


def test_stripped_model_loads_without_helpers(example):
    folder, model, x = example["folder"], example["model"], example["x"]
    with zipfile.ZipFile(folder / "plain.keras") as archive:
        assert "helpers" not in archive.read("config.json").decode()
    np.save(folder / "x.npy", x)
    script = ("import sys, keras, numpy as np; m = keras.saving.load_model('plain.keras'); "
              "np.save('y.npy', m.predict(np.load('x.npy'), verbose=0)); "
              "assert not any(n.split('.')[0] == 'helpers' for n in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, check=True, timeout=300)
    np.testing.assert_allclose(np.load(folder / "y.npy"), model.predict(x, verbose=0), atol=1e-6)


def test_masks_keep_holding_after_a_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu", name="h")(inputs))
    model = keras.Model(inputs, outputs)
    masks = pruning.masks_for(model, 0.5, granularity="unit", layers=["h"])
    pruning.attach_masks(model, masks)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    loaded.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    rng = np.random.default_rng(0)
    loaded.fit(rng.random((32, 6)), rng.random((32, 3)), epochs=2, verbose=0)
    kernel, bias = loaded.get_layer("h").kernel.numpy(), loaded.get_layer("h").bias.numpy()
    assert np.all(kernel[~masks["h/kernel"]] == 0) and np.all(bias[~masks["h/bias"]] == 0)
    assert np.count_nonzero(kernel[masks["h/kernel"]]) == masks["h/kernel"].sum()
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    assert "PruningConstraint" in json.dumps(config)

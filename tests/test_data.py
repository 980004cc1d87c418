"""Dataset loading: offline files, preprocessing of REPRODUCTION_NOTES.md §5, subsets, clear errors."""

import numpy as np
import pytest

from helpers import data


@pytest.mark.needs_data("mnist")
def test_mnist_preprocessing():
    ds = data.load_dataset("mnist")
    assert ds.x_train.shape == (60_000, 28, 28, 1) and ds.x_test.shape == (10_000, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32 and ds.y_train.shape == (60_000,)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train.mean() * 255 == pytest.approx(33.32, abs=0.01)  # data/README.md's check
    assert ds.variant == "official" and ds.label == "MNIST"


@pytest.mark.needs_data("fashion_mnist")
def test_fashion_mnist_loads():
    ds = data.load_dataset("fashion-mnist")
    assert ds.name == "fashion_mnist" and ds.x_train.shape == (60_000, 28, 28, 1)
    assert ds.x_train.mean() * 255 == pytest.approx(72.94, abs=0.01)


@pytest.mark.needs_data("cifar10")
def test_cifar10_global_zscore():
    ds = data.load_dataset("cifar10")
    assert ds.x_train.shape == (50_000, 32, 32, 3) and ds.y_train.shape == (50_000,)
    # one scalar mean/std over all training pixels and channels
    assert ds.x_train.mean() == pytest.approx(0.0, abs=1e-3) and ds.x_train.std() == pytest.approx(1.0, abs=1e-3)
    assert set(np.unique(ds.y_train)) == set(range(10))
    if "jpeg" in ds.source:
        assert ds.variant == "jpeg-q75 stand-in" and "stand-in" in ds.label


@pytest.mark.needs_data("mnist")
def test_subset_and_validation_split():
    full = data.load_dataset("mnist")
    ds = data.load_dataset("mnist", train_subset=1000, validation_size=10_000, seed=3)
    assert len(ds.x_train) == 1000 and len(ds.x_val) == 10_000
    np.testing.assert_array_equal(ds.x_val, full.x_train[-10_000:])  # the last 10k, whatever the subset
    assert np.bincount(ds.y_train).min() == 100  # stratified
    again = data.load_dataset("mnist", train_subset=1000, validation_size=10_000, seed=3)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    assert ds.evaluation_split("val")[0] is ds.x_val
    with pytest.raises(ValueError, match="no validation split"):
        full.evaluation_split("val")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="train_subset"):
        data.load_dataset("mnist", train_subset=0)
    with pytest.raises(ValueError, match="validation_size"):
        data.load_dataset("mnist", validation_size=-5)


def test_offline_without_file_says_how_to_fix(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))

    def no_network():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    with pytest.raises(RuntimeError) as info:
        data.load_dataset("mnist")
    message = str(info.value)
    assert "mnist.npz" in message and data.DATA_DIR_ENV in message and str(tmp_path) in message


def test_npz_in_data_dir_is_used(tmp_path, monkeypatch, rng):
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 10
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    ds = data.load_dataset("mnist")
    assert ds.source.endswith("mnist.npz") and len(ds.x_train) == 20
    np.testing.assert_allclose(ds.x_train[..., 0], x / 255.0, rtol=1e-6)


def test_data_check_names_every_missing_dataset_at_once(monkeypatch, capsys):
    from helpers import data as data_lib

    monkeypatch.setattr(data_lib, "unavailable_reason", lambda name: None if name == "mnist" else f"no {name} data: X")
    assert data_lib.main(["check"]) == 1
    err = capsys.readouterr().err
    assert "no fashion_mnist data: X" in err and "no cifar10 data: X" in err and "2 of 3 datasets missing" in err
    assert "no mnist" not in err
    monkeypatch.setattr(data_lib, "unavailable_reason", lambda name: None)
    assert data_lib.main(["check"]) == 0

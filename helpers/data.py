"""Datasets with the paper's preprocessing (REPRODUCTION_NOTES.md §5), offline-first.

Each dataset is read from ``<data folder>/<file>`` when that file exists, and otherwise
downloaded through ``keras.datasets`` (users with internet access, Colab). The data folder is
``$PRUNING_DATA_DIR``, else ``../shared/data`` beside the checkout (``helpers.paths.data_dir``).

=================  ===========================================  ==========================
dataset            files looked for in ``$PRUNING_DATA_DIR``     preprocessing
=================  ===========================================  ==========================
``mnist``          ``mnist.npz``                                 (N,28,28,1) float32 / 255
``fashion_mnist``  ``fashion-mnist.npz``                         (N,28,28,1) float32 / 255
``cifar10``        ``cifar10.npz``, else ``cifar10-jpeg.npz``    one global z-score
=================  ===========================================  ==========================

CIFAR-10 from ``cifar10-jpeg.npz`` is a JPEG (quality 75) re-encoding of the official
images, so its ``variant`` is ``"jpeg-q75 stand-in"`` and every figure made from it says so.
Labels are integer class ids of shape (N,) everywhere (sparse cross-entropy).

The variant (and ``Dataset.content_hash``, a hash of the raw arrays, the same whether they came
from a file or from ``keras.datasets``) is part of every training run's record
(``helpers.runner``): figure titles and labels take it from the runs (``dataset_label``), never
from the file this machine happens to have (``file_variant`` says which one that is).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .files import atomic_write, quarantine
from .validation import Choice, Int, Optional, validated

DATA_DIR_ENV = paths.DATA_DIR_ENV
CACHE_DIR_ENV = "PRUNING_CACHE_DIR"  # where decoded CIFAR-10 JPEGs are kept (default ~/.cache/mo-pruning)

DATASETS = ("mnist", "fashion_mnist", "cifar10")
# Training images of the official datasets (the runner checks subsets and batches against them).
TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}
# Training images of each dataset's smallest class (MNIST: the 5,421 fives); bounds how many images
# per class a figure can show.
TRAIN_CLASS_MIN = {"mnist": 5_421, "fashion_mnist": 6_000, "cifar10": 5_000}
IMAGE_SHAPES = {"mnist": ((28, 28), (28, 28, 1)), "fashion_mnist": ((28, 28), (28, 28, 1)),
                "cifar10": ((32, 32, 3),)}
NUM_CLASSES = 10

OFFICIAL = "official"
STAND_IN = "jpeg-q75 stand-in"  # CIFAR-10 re-encoded as JPEG, quality 75 (cifar10-jpeg.npz)
PRETTY_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def dataset_label(name: str, variant: str = OFFICIAL) -> str:
    """``"CIFAR-10 (jpeg-q75 stand-in)"``: the dataset's name, with its variant unless official."""
    pretty = PRETTY_NAMES[check_dataset_name(name)]
    return pretty if variant == OFFICIAL else f"{pretty} ({variant})"


def content_hash(raw: dict) -> str:
    """16 hex digits of SHA-256 over the raw arrays (x/y train/test: shape, dtype, bytes), labels
    as int32 ids of shape (N,): the official data hashes the same from a file and from keras.datasets.
    About 0.2 s for CIFAR-10."""
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        array = np.asarray(raw[key])
        if key.startswith("y"):
            array = array.reshape(-1).astype("int32")
        array = np.ascontiguousarray(array)
        digest.update(f"{key}{array.shape}{array.dtype.str}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]

_FILES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": ("fashion-mnist.npz",),
    "cifar10": ("cifar10.npz", "cifar10-jpeg.npz"),
}

# Class names, for plots.
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}


@dataclass
class Dataset:
    """Preprocessed arrays of one dataset, plus where they came from."""

    name: str
    variant: str  # "official" or "jpeg-q75 stand-in"; shown beside every number
    source: str   # file path or "keras.datasets"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    notes: dict = field(default_factory=dict)
    content_hash: str | None = None  # ``content_hash`` of the raw arrays it was made from

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def label(self) -> str:
        """Human-readable dataset label of the data loaded now (results take theirs from their runs)."""
        return dataset_label(self.name, self.variant)

    def evaluation_split(self, on: str = "test"):
        """(x, y) of the split that selection/evaluation uses: "test" (faithful, B22) or "val"."""
        if on == "test":
            return self.x_test, self.y_test
        if on == "val":
            if self.x_val is None:
                raise ValueError("this Dataset has no validation split; load it with validation_size > 0")
            return self.x_val, self.y_val
        raise ValueError(f"evaluation split must be 'test' or 'val', got {on!r}")


def data_dir() -> Path | None:
    """The offline data folder (``helpers.paths.data_dir``): ``$PRUNING_DATA_DIR``, else
    ``../shared/data`` beside the checkout, else None (download through ``keras.datasets``)."""
    return paths.data_dir()


# The one reason a test or an nbval cell is skipped with when its data cannot be loaded.
NO_DATA = "no dataset: set PRUNING_DATA_DIR or put the data in ../shared/data (see helpers/data.py)"


class DataUnavailableError(RuntimeError):
    """No offline file and no download: the one error a run without data stops with."""


def check_dataset_name(name: str, parameter="dataset") -> str:
    """The canonical name (``fashion-mnist`` -> ``fashion_mnist``); TypeError/ValueError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{parameter} must be a str, one of {', '.join(DATASETS)}; got {name!r} "
                        f"({type(name).__name__})")
    canonical = name.lower().replace("-", "_")
    if canonical not in DATASETS:
        raise ValueError(f"unknown {parameter} {name!r}; choose one of {', '.join(DATASETS)}")
    return canonical


class DataError(ValueError):
    """A dataset file whose arrays are not what ``load_dataset`` expects (the file is named)."""


def check_raw(name: str, raw: dict, source: str) -> None:
    """Check the raw arrays of ``name`` read from ``source`` before any preprocessing.

    x/y lengths agree and are non-empty, images have the dataset's shape and hold raw 0..255
    pixel values (an array already scaled to [0, 1] would be divided by 255 again), labels are
    integer class ids in [0, 10). Every error names ``source``.
    """
    for split in ("train", "test"):
        x, y = np.asarray(raw[f"x_{split}"]), np.asarray(raw[f"y_{split}"])
        where = f"{source}: x_{split}"
        if len(x) == 0:
            raise DataError(f"{where} is empty")
        if len(x) != len(y):
            raise DataError(f"{where} has {len(x)} images but y_{split} has {len(y)} labels")
        if tuple(x.shape[1:]) not in IMAGE_SHAPES[name]:
            raise DataError(f"{where} has images of shape {tuple(x.shape[1:])}; {name} needs "
                            f"{' or '.join(map(str, IMAGE_SHAPES[name]))}")
        if x.dtype.kind not in "uif":
            raise DataError(f"{where} has dtype {x.dtype}; expected raw uint8 pixels")
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise DataError(f"{where} has values in [{low:g}, {high:g}]; expected raw pixels in 0..255")
        if x.dtype.kind == "f" and high <= 1.0:
            raise DataError(f"{where} holds floats in [{low:g}, {high:g}]: already scaled to [0, 1]? The loader "
                            "divides by 255 itself; store the raw 0..255 (uint8) pixels")
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise DataError(f"{source}: y_{split} has shape {y.shape}; expected integer class ids of shape (N,)")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise DataError(f"{source}: y_{split} holds non-integer labels; expected class ids 0..9")
        elif y.dtype.kind not in "ui":
            raise DataError(f"{source}: y_{split} has dtype {y.dtype}; expected integer class ids")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise DataError(f"{source}: y_{split} has labels in [{y.min()}, {y.max()}]; expected class ids in "
                            f"[0, {NUM_CLASSES})")


def _decode_jpeg_archive(path: Path) -> dict:
    """Decode the compact JPEG archive (keys *_jpeg, *_offsets, y_*) to uint8 arrays.

    Decoding 60,000 JPEGs takes about 15 s, so the result is kept in a cache folder keyed
    by the archive's size and modification time, and later loads take a second.
    """
    stat = path.stat()
    cache_root = Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "mo-pruning")
    cached = cache_root / f"cifar10-jpeg-decoded-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if cached.exists():
        try:
            with np.load(cached) as f:
                return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except Exception as exc:  # a truncated cache file: decode again
            quarantine(cached, f"{type(exc).__name__}: {exc}")

    from PIL import Image

    try:
        with np.load(path) as src:
            out = {}
            for split in ("train", "test"):
                blob, offsets = src[f"{split}_jpeg"], src[f"{split}_offsets"]
                n = len(offsets) - 1
                images = np.empty((n, 32, 32, 3), np.uint8)
                for i in range(n):
                    raw = blob[offsets[i]:offsets[i + 1]].tobytes()
                    images[i] = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
                out[f"x_{split}"], out[f"y_{split}"] = images, src[f"y_{split}"]
    except Exception as exc:
        raise DataError(f"cannot read the CIFAR-10 JPEG archive {path}: {type(exc).__name__}: {exc}") from exc

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **out)
    try:  # the cache is an optimisation only: a read-only home must not break loading
        atomic_write(cached, write, suffix=".npz")
    except OSError:
        pass
    return out


def _read_raw(name: str):
    """Return (raw arrays dict, variant, source) for a canonical dataset name."""
    directory = data_dir()
    if directory is not None:
        for filename in _FILES[name]:
            path = directory / filename
            if not path.exists():
                continue
            if filename.endswith("-jpeg.npz"):
                return _decode_jpeg_archive(path), STAND_IN, str(path)
            try:
                with np.load(path) as f:
                    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
                    if missing:
                        raise DataError(f"{path} lacks the arrays {missing} (has {f.files})")
                    raw = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
                    variant = str(f["variant"]) if "variant" in f.files else "official"
            except DataError:
                raise
            except Exception as exc:  # BadZipFile, EOFError, pickled objects, ...
                raise DataError(f"cannot read the dataset file {path}: {type(exc).__name__}: {exc}") from exc
            return raw, variant, str(path)
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
              "cifar10": keras.datasets.cifar10}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # no network, or a broken download
        looked = (f"looked in {directory} for {' or '.join(_FILES[name])}" if directory
                  else f"${DATA_DIR_ENV} is not set and there is no ../shared/data beside the checkout")
        raise DataUnavailableError(
            f"cannot load {name!r}: {looked}, and keras.datasets could not download it "
            f"({type(exc).__name__}: {exc}). Offline, put the file {_FILES[name][0]} (arrays "
            f"x_train, y_train, x_test, y_test as keras.datasets returns them) in a folder and "
            f"set {DATA_DIR_ENV}=/that/folder."
        ) from exc
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), "official", "keras.datasets"


def file_variant(name: str) -> str:
    """The variant ``load_dataset(name)`` would report, from the file it would read (no decoding):
    ``"jpeg-q75 stand-in"`` for ``cifar10-jpeg.npz``, else ``"official"``. What this machine would
    train on; results are labelled with their runs' variant instead (``helpers.sweep.dataset_label``)."""
    directory = data_dir()
    for filename in _FILES[name] if directory is not None else ():
        if (directory / filename).exists():
            return STAND_IN if filename.endswith("-jpeg.npz") else OFFICIAL
    return OFFICIAL


def unavailable_reason(name: str):
    """None if ``name`` can be loaded (its file is in ``$PRUNING_DATA_DIR``, or keras.datasets has
    it or can download it); otherwise one short line saying why not (for skipping tests)."""
    name = check_dataset_name(name)
    directory = data_dir()
    if directory is not None and any((directory / f).exists() for f in _FILES[name]):
        return None
    try:
        _read_raw(name)
        return None
    except Exception:
        return (f"no {name} data: set {DATA_DIR_ENV} to a folder with {_FILES[name][0]} or put the data in "
                "../shared/data (keras.datasets could not download it)")


CIFAR_NORMALIZATIONS = ("zscore", "half")


@validated(train_subset=Optional(Int(1)), validation_size=Int(0), seed=Int(0),
           cifar_normalization=Choice(*CIFAR_NORMALIZATIONS))
def load_dataset(name: str, train_subset: int | None = None, validation_size: int = 0,
                 seed: int = 0, cifar_normalization: str = "zscore") -> Dataset:
    """Load a dataset with the paper's preprocessing.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        train_subset: keep only this many training images (a seeded, class-stratified
            random subset), for reduced protocols; None keeps all.
        validation_size: hold out the *last* this-many training images as a validation
            split (the clean alternative to selecting on the test set, REPRODUCTION_NOTES.md, B22). The
            hold-out is taken before ``train_subset`` so it is the same for every subset.
        seed: seed of the subset draw.
        cifar_normalization: ``"zscore"`` (the paper: one global mean and std) or ``"half"``
            (project 003: ``(x / 255 - 0.5) / 0.5`` per channel).
    """
    name = check_dataset_name(name)

    raw, variant, source = _read_raw(name)
    check_raw(name, raw, source)
    digest = content_hash(raw)
    x_train, y_train = raw["x_train"], np.asarray(raw["y_train"]).reshape(-1).astype("int32")
    x_test, y_test = raw["x_test"], np.asarray(raw["y_test"]).reshape(-1).astype("int32")
    raw.clear()  # each raw array is freed as soon as its preprocessed copy exists
    if validation_size >= len(x_train):
        raise ValueError(f"validation_size={validation_size} leaves no training images (have {len(x_train)} "
                         f"in {source})")
    if train_subset is not None and train_subset > len(x_train) - validation_size:
        raise ValueError(f"train_subset must be <= the {len(x_train) - validation_size} training images of "
                         f"{source} (after a validation split of {validation_size}), got {train_subset}")

    # Every step works in the one float32 copy of each split (no full-size temporaries: CIFAR-10's
    # training images are 0.6 GB as float32), with the same float32 operations, so the same bits,
    # as the expressions in the comments.
    if name == "cifar10" and cifar_normalization == "half":
        x_train, x_test = _half(x_train), _half(x_test)  # (x.astype("float32") / 255.0 - 0.5) / 0.5
        notes = {"normalization": "half"}
    elif name == "cifar10":
        # One global z-score over all training pixels and channels (scalars), test set
        # normalised with the training statistics: REPRODUCTION_NOTES.md §5.
        raw_train, x_train = x_train, x_train.astype("float32")
        mean = x_train.mean()
        std = _std_overwriting(x_train)  # x_train.std()
        np.copyto(x_train, raw_train)  # astype("float32") again
        del raw_train
        x_train, x_test = _zscore(x_train, mean, std), _zscore(x_test.astype("float32"), mean, std)
        notes = {"mean": float(mean), "std": float(std)}
    else:
        x_train, x_test = _unit(x_train), _unit(x_test)  # x.reshape(-1, 28, 28, 1).astype("float32") / 255.0
        notes = {}

    x_val = y_val = None
    if validation_size:
        x_val, y_val = x_train[-validation_size:], y_train[-validation_size:]
        x_train, y_train = x_train[:-validation_size], y_train[:-validation_size]

    if train_subset is not None and train_subset < len(x_train):
        index = stratified_subset(y_train, train_subset, seed)
        x_train, y_train = x_train[index], y_train[index]

    return Dataset(name=name, variant=variant, source=source, x_train=x_train, y_train=y_train,
                   x_test=x_test, y_test=y_test, x_val=x_val, y_val=y_val, notes=notes, content_hash=digest)


def pixel_stats(x: np.ndarray, chunk: int = 1024) -> tuple[float, float]:
    """``(mean, std)`` of every value of ``x``, accumulated in float64 over ``chunk`` images at a
    time: no temporary of ``x``'s size (``x.std()`` makes one, 0.6 GB for CIFAR-10's images)."""
    total, count = 0.0, x.size
    for start in range(0, len(x), chunk):
        total += float(x[start:start + chunk].sum(dtype=np.float64))
    mean, squares = total / count, 0.0
    for start in range(0, len(x), chunk):
        deviation = x[start:start + chunk].astype(np.float64).ravel() - mean
        squares += float(deviation @ deviation)
    return mean, float(np.sqrt(squares / count))


def summary(ds: Dataset) -> dict:
    """One row describing ``ds``: its label, the file (or keras.datasets) it came from, the shapes
    of its splits and the mean and std of its training pixels (``pixel_stats``)."""
    mean, std = pixel_stats(ds.x_train)
    return {"dataset": ds.label, "source": Path(ds.source).name, "train": ds.x_train.shape, "test": ds.x_test.shape,
            "pixel mean": round(mean, 4), "pixel std": round(std, 4)}


def _std_overwriting(x: np.ndarray):
    """``x.std()`` of a float32 array, bit for bit (numpy's own steps: a pairwise float32 sum for
    the mean, divided by the count as ``intp``, squared deviations summed the same way), computed
    in ``x``'s memory instead of a temporary of its size; ``x`` is overwritten."""
    count = np.intp(x.size)
    mean = np.add.reduce(x, axis=None, keepdims=True)
    np.true_divide(mean, count, out=mean, casting="unsafe")
    np.subtract(x, mean, out=x)
    np.square(x, out=x)
    variance = np.add.reduce(x, axis=None)
    variance = variance.dtype.type(variance / count)
    return variance.dtype.type(np.sqrt(variance))


def _zscore(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean) / (std + 1e-7)`` in ``x``'s memory (a float32 array)."""
    np.subtract(x, mean, out=x)
    np.divide(x, std + 1e-7, out=x)
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    """``x.reshape(-1, 28, 28, 1).astype("float32") / 255.0`` with one float32 copy of ``x``."""
    out = x.reshape(-1, 28, 28, 1).astype("float32")
    np.divide(out, 255.0, out=out)
    return out


def _half(x: np.ndarray) -> np.ndarray:
    """``(x.astype("float32") / 255.0 - 0.5) / 0.5`` with one float32 copy of ``x``."""
    out = x.astype("float32")
    np.divide(out, 255.0, out=out)
    np.subtract(out, 0.5, out=out)
    np.divide(out, 0.5, out=out)
    return out


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset with (almost) equal class proportions."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = np.full(len(classes), size // len(classes))
    per_class[: size - per_class.sum()] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c, n in zip(classes, per_class)]
    return np.sort(np.concatenate(picks))


def augment_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """The standard CIFAR augmentation (He et al. 2016, section 4.2): each image of ``x`` (N, H, W,
    C) zero-padded by ``pad`` pixels, cropped back to H x W at a random offset and flipped
    horizontally with probability 1/2, all drawn from ``rng``. Returns a new array."""
    n, height, width = x.shape[:3]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = rng.integers(0, 2 * pad + 1, n)
    cols = rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    out = np.empty_like(x)
    for dy in range(2 * pad + 1):  # one slice per offset: (2 pad + 1)^2 vectorised copies
        for dx in range(2 * pad + 1):
            chosen = (rows == dy) & (cols == dx)
            if chosen.any():
                out[chosen] = padded[chosen, dy:dy + height, dx:dx + width]
    out[flip] = out[flip, :, ::-1]
    return out


def missing_data(names=DATASETS):
    """``{name: reason}`` for every dataset of ``names`` that cannot be loaded (all at once, so a
    user fixes them in one go; ``python -m helpers.data check``, run first by ``make figures``)."""
    return {name: reason for name in names if (reason := unavailable_reason(name)) is not None}


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.data", description="Check the offline datasets.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS), help=f"default: {' '.join(DATASETS)}")
    args = parser.parse_args(argv)
    missing = missing_data([check_dataset_name(name) for name in args.datasets])
    for reason in missing.values():
        print(reason, file=sys.stderr)
    if missing:
        print(f"{len(missing)} of {len(args.datasets)} datasets missing; see the README's Data section.", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

"""Datasets by name: a TFDS-prepared copy, local IDX files, or a TFDS download, in that order.

For a TFDS name (``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``, any TFDS image
classification set) :func:`load` tries, in order:

1. a TFDS-prepared copy under ``data_dir`` (default ``$TFDS_DATA_DIR``, else
   ``~/tensorflow_datasets``), read with ``tfds.data_source`` (ArrayRecord, no TensorFlow);
2. IDX files (``train-images-idx3-ubyte[.gz]`` ...) in ``data_dir``, ``data_dir/NAME`` and,
   for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's
   ``dataset-fashion-mnist``);
3. a TFDS download and prepare into that TFDS folder (``download=True``; needs the network
   and, because TFDS encodes the images with it, TensorFlow).

A split read from a TFDS-prepared copy is decoded once and kept next to it as
``cnn_jax-SPLIT.npz`` (see :mod:`cnn_jax.data.cache`). When all fail,
:class:`DatasetNotFound` lists each attempt and the ways to fix it.
Synthetic names (``"synthetic_bars"``) are generated in code and need nothing.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os

import numpy as np

from cnn_jax.data import cache, idx
from cnn_jax.data.dataset import Dataset, DatasetInfo, parse_split, select
from cnn_jax.data.synthetic import SYNTHETIC, load_synthetic

__all__ = [
    "IDX_DATASETS",
    "SYSTEM_IDX_DIRS",
    "DatasetNotFound",
    "check_name",
    "holdout_mask",
    "known_info",
    "load",
    "load_splits",
    "tfds_root",
]

# Metadata of the sets that come as IDX files (as TFDS describes them).
IDX_DATASETS = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        num_classes=10,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"),
        image_shape=(28, 28, 1),
    ),
    "mnist": DatasetInfo(
        name="mnist", num_classes=10, class_names=tuple(map(str, range(10))),
        image_shape=(28, 28, 1),
    ),
}
# Where operating-system packages put IDX copies, and the package to install.
SYSTEM_IDX_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist")}
_IDX_PREFIX = {"train": "train", "test": "t10k"}
VALIDATIONS = ("test", "holdout")


class DatasetNotFound(FileNotFoundError):
    """No source could provide the dataset; the message lists what was tried."""


# ----------------------------------------------------------------------------- public API


def load(name: str, split: str, *, data_dir: str | None = None, download: bool = True) -> Dataset:
    """Loads a dataset split into host memory.

    Args:
      name: a TFDS name (``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``, ...) or a synthetic
        set (``"synthetic_bars"``).
      split: ``"train"`` or ``"test"``, optionally sliced TFDS-style: ``"train[:90%]"``,
        ``"test[100:200]"`` (percentages round to the nearest example).
      data_dir: a folder holding a TFDS-prepared copy and/or the IDX files (directly or in
        ``data_dir/NAME``); TFDS downloads go here too. Default: ``$TFDS_DATA_DIR``, else
        ``~/tensorflow_datasets`` (a given ``data_dir`` replaces both).
      download: allow step 3 (a TFDS download) when nothing local is found.

    Returns:
      The split: uint8 images [N, H, W, C], int32 labels [N], metadata and its source.

    Raises:
      ValueError: unknown ``name`` or malformed ``split``.
      DatasetNotFound: no local copy, and the download was not allowed or failed.
      cnn_jax.data.idx.IdxError: IDX files were found but are corrupt.

    >>> ds = load("synthetic_bars", "test[:8]")
    >>> ds.images.shape, ds.labels.dtype, ds.info.class_names[0]
    ((8, 28, 28, 1), dtype('int32'), 'horizontal')
    """
    base, part = parse_split(split)
    if name in SYNTHETIC:
        ds = load_synthetic(name, base)
    else:
        check_name(name)
        ds = _resolve(name, base, data_dir, download)
    if part == slice(None):
        return ds
    return select(ds, part, f"[{part.start or ''}:{part.stop or ''}]")


def known_info(name: str) -> DatasetInfo | None:
    """The metadata of ``name`` when it is known without reading data (synthetic and IDX
    sets), else None.

    >>> known_info("fashion_mnist").image_shape, known_info("cifar10")
    ((28, 28, 1), None)
    """
    if name in SYNTHETIC:
        return SYNTHETIC[name][0]
    return IDX_DATASETS.get(name)


def load_splits(
    name: str,
    *,
    validation: str = "test",
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = True,
) -> tuple[Dataset, Dataset]:
    """The training set and the set to validate (early-stop) on.

    Args:
      name: as for :func:`load`.
      validation: ``"test"``: the whole train split, and the test split for validation (what
        the lecture does); ``"holdout"``: a seeded carve-out of train, stratified by class
        (each class gives ``round(validation_fraction * its count)`` examples).
      validation_fraction: the held-out share, in (0, 1); used with ``"holdout"`` only.
      seed: chooses the held-out examples.
      data_dir: as for :func:`load`.
      download: as for :func:`load`.

    Returns:
      ``(train, valid)``; with ``"holdout"`` they are disjoint, together cover the train
      split and keep its order.

    Raises:
      ValueError: bad ``validation`` or ``validation_fraction``, or a holdout that leaves
        either part empty.
    """
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, got {validation!r}")
    if validation == "holdout" and not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
    train = load(name, "train", data_dir=data_dir, download=download)
    if validation == "test":
        return train, load(name, "test", data_dir=data_dir, download=download)
    held = holdout_mask(train.labels, validation_fraction, seed)
    if held.all() or not held.any():
        raise ValueError(
            f"validation_fraction={validation_fraction!r} of {len(train)} examples leaves an "
            "empty train or validation part"
        )
    note = f"|holdout(fraction={validation_fraction}, seed={seed})"
    return (select(train, np.flatnonzero(~held), note + ":train"),
            select(train, np.flatnonzero(held), note + ":valid"))


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Marks a seeded, class-stratified ``fraction`` of the examples.

    Args:
      labels: int [N].
      fraction: share to mark in each class (rounded to the nearest count).
      seed: NumPy seed.

    Returns:
      bool [N], ``True`` for held-out examples.
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        held[rng.permutation(members)[: int(round(fraction * len(members)))]] = True
    return held


# ----------------------------------------------------------------------------- resolution


def check_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is a synthetic, IDX or registered TFDS dataset.

    Needs no data: a script calls it before loading anything.
    """
    if name in IDX_DATASETS or name in SYNTHETIC:
        return
    import tensorflow_datasets as tfds

    builder = name.split("/")[0].split(":")[0]  # "emnist/letters:3.1.0" -> "emnist"
    if builder not in tfds.core.registered.list_imported_builders():
        known = sorted(SYNTHETIC) + sorted(IDX_DATASETS) + ["cifar10"]
        raise ValueError(f"unknown dataset name {name!r}; expected one of {', '.join(known)} "
                         "or another TFDS image classification name")


def tfds_root(data_dir: str | None) -> str:
    """The TFDS folder: ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return os.path.abspath(os.path.expanduser(root))


def _resolve(name: str, split: str, data_dir: str | None, download: bool) -> Dataset:
    root = tfds_root(data_dir)
    tried = []

    prepared = _find_prepared(root, name)
    if prepared:
        try:
            return _from_tfds(name, split, root, download=False)
        except Exception as e:  # a copy TFDS cannot read: report it and go on
            copies = ", ".join(sorted(os.path.dirname(p) for p in prepared))
            tried.append(f"TFDS-prepared copy under {os.path.join(root, name)} ({copies}): "
                         f"failed with {type(e).__name__}: {' '.join(str(e).split())[:400]}; "
                         "it is corrupt or incomplete: delete it to prepare it again")
            logging.warning("%s", tried[-1])
    else:
        tried.append(f"TFDS-prepared copy: none under {os.path.join(root, name)} "
                     "(no dataset_info.json)")

    folders = _idx_folders(name, data_dir)
    for folder in folders:
        found = _find_idx(folder, split)
        if isinstance(found, tuple):
            return _from_idx(name, folder, *found)
        tried.append(f"IDX files in {folder}: {found}")
    if not folders:
        tried.append(f"IDX files: no folder to look in (no data_dir, and no system copy of "
                     f"{name!r} is known)")

    if not download:
        tried.append("TFDS download: not allowed (download=False)")
    elif not tensorflow_installed():
        tried.append("TFDS download: skipped, TensorFlow is not installed and TFDS needs it to "
                     "encode the images while preparing")
    else:
        try:
            return _from_tfds(name, split, root, download=True)
        except Exception as e:  # any failure is reported with the other attempts
            tried.append(f"TFDS download into {root}: failed with {type(e).__name__}: {e}")
    raise DatasetNotFound(_not_found_message(name, split, tried))


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (TFDS needs it to prepare image datasets)."""
    return importlib.util.find_spec("tensorflow") is not None


def _not_found_message(name: str, split: str, tried: list[str]) -> str:
    lines = [f"could not load dataset {name!r}, split {split!r}. Tried, in order:"]
    lines += [f"  {i}. {t}" for i, t in enumerate(tried, 1)]
    lines.append("Fix it in one of three ways:")
    if name in SYSTEM_IDX_DIRS:
        folder, package = SYSTEM_IDX_DIRS[name]
        lines.append(f"  - install the system package (Debian/Ubuntu): "
                     f"sudo apt-get install {package}  (puts the IDX files in {folder})")
    else:
        lines.append(f"  - install a system package: none is known for {name!r} "
                     f"(only for {sorted(SYSTEM_IDX_DIRS)})")
    lines.append("  - pass data_dir=DIR, where DIR holds the IDX files "
                 "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...) "
                 f"or a TFDS-prepared copy (DIR/{name}/VERSION/dataset_info.json)")
    lines.append("  - let TFDS download and prepare it: network access, download=True and "
                 "TensorFlow installed (pip install tensorflow)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- TFDS


def _find_prepared(root: str, name: str) -> list[str]:
    """The ``dataset_info.json`` files of prepared copies: ROOT/NAME/[CONFIG/]VERSION/."""
    found = []
    for pattern in ("*", os.path.join("*", "*")):
        found += glob.glob(os.path.join(root, glob.escape(name), pattern, "dataset_info.json"))
    return found


def _from_tfds(name: str, split: str, root: str, *, download: bool) -> Dataset:
    import tensorflow_datasets as tfds

    source = tfds.data_source(name, split=split, data_dir=root, download=download)
    features = source.dataset_info.features
    image_key, label_key = source.dataset_info.supervised_keys or ("image", "label")
    shape = tuple(features[image_key].shape)
    if None in shape or len(shape) != 3:
        raise ValueError(f"dataset {name!r} has images of shape {shape}; load needs a fixed "
                         "(H, W, C)")
    label_feature = features[label_key]
    info = DatasetInfo(name=name, num_classes=label_feature.num_classes,
                       class_names=tuple(label_feature.names), image_shape=shape)

    # The cache sits in the folder TFDS read from, if that folder is under root and holds as
    # many examples as its dataset_info.json says (a mocked TFDS fails one or the other, and
    # its fake examples must never be cached).
    copy = os.path.realpath(os.fspath(source.dataset_info.data_dir))
    own = copy.startswith(os.path.join(os.path.realpath(root), name) + os.sep)
    info_json = os.path.join(copy, "dataset_info.json")
    if (own and os.path.isfile(info_json)
            and len(source) == source.dataset_info.splits[split].num_examples):
        path = os.path.join(copy, f"cnn_jax-{split}.npz")
        stamp = cache.fingerprint(info_json, split)
        arrays = cache.read(path, stamp, num_examples=len(source), image_shape=shape,
                            num_classes=info.num_classes)
    else:
        path = stamp = arrays = None
    if arrays is None:
        arrays = _decode_all(source, image_key, label_key, shape)
        if path is not None:
            cache.write(path, *arrays, stamp)
    prefix = "tfds+download" if download else "tfds"
    return Dataset(images=arrays[0], labels=arrays[1], info=info, source=f"{prefix}:{root}")


def _decode_all(source, image_key: str, label_key: str, shape) -> tuple[np.ndarray, np.ndarray]:
    """Every example of a TFDS data source: uint8 images [N, *shape], int32 labels [N]."""
    n = len(source)
    images = np.empty((n, *shape), np.uint8)
    labels = np.empty(n, np.int32)
    chunk = 4096
    for start in range(0, n, chunk):
        for i, example in enumerate(source.__getitems__(range(start, min(n, start + chunk)))):
            images[start + i] = example[image_key]
            labels[start + i] = example[label_key]
    return images, labels


# ----------------------------------------------------------------------------- IDX


def _idx_folders(name: str, data_dir: str | None) -> list[str]:
    folders = []
    if data_dir is not None:
        folder = os.path.abspath(os.path.expanduser(data_dir))
        folders += [folder, os.path.join(folder, name)]
    if name in SYSTEM_IDX_DIRS:
        folders.append(SYSTEM_IDX_DIRS[name][0])
    return folders


def _find_idx(folder: str, split: str) -> tuple[str, str] | str:
    """``(images_path, labels_path)`` for the split, or a reason why there are none."""
    if not os.path.isdir(folder):
        return "no such folder"
    paths = []
    for kind, rank in (("images", 3), ("labels", 1)):
        stem = f"{_IDX_PREFIX[split]}-{kind}"
        candidates = [os.path.join(folder, f"{stem}{sep}idx{rank}-ubyte{gz}")
                      for sep in ("-", ".") for gz in (".gz", "")]
        present = [p for p in candidates if os.path.isfile(p)]
        if not present:
            return f"no {stem}-idx{rank}-ubyte[.gz]"
        paths.append(present[0])
    return paths[0], paths[1]


def _from_idx(name: str, folder: str, images_path: str, labels_path: str) -> Dataset:
    if name not in IDX_DATASETS:
        raise ValueError(f"found IDX files in {folder}, but no metadata for {name!r}; IDX "
                         f"loading knows {sorted(IDX_DATASETS)}")
    info = IDX_DATASETS[name]
    images, labels = idx.read_idx(images_path), idx.read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != info.image_shape[:2]:
        raise idx.IdxError(f"{images_path}: expected uint8 images [N, "
                           f"{info.image_shape[0]}, {info.image_shape[1]}], got "
                           f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise idx.IdxError(f"{labels_path}: expected {len(images)} labels (one per image in "
                           f"{images_path}), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise idx.IdxError(f"{labels_path}: labels must lie in [0, {info.num_classes}), got "
                           f"[{labels.min()}, {labels.max()}]")
    return Dataset(images=images.reshape(len(images), *info.image_shape),
                   labels=labels.astype(np.int32), info=info, source=f"idx:{folder}")

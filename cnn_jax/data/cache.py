"""Decoded copies of TFDS-prepared splits as ``.npz`` files, written atomically.

Reading a prepared split through ``tfds.data_source`` decodes one PNG per example (about
10 s for 60,000 MNIST-sized images on two cores); the cache turns later loads into one
``numpy.load``. A cache file records a fingerprint of the copy it was made from (the bytes
of its ``dataset_info.json``, the split and the cache format) and counts only when that
fingerprint still matches. A cache that cannot be read, or whose arrays do not have the
shapes and dtypes the copy promises (a truncated or damaged file), is ignored with a warning
and rebuilt: it never stands in for the data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile

import numpy as np

__all__ = ["FORMAT", "fingerprint", "read", "write"]

FORMAT = "cnn_jax.data.cache/1"


def fingerprint(dataset_info_json: str, split: str) -> str:
    """Identifies a split of a prepared copy by its ``dataset_info.json`` (path to the file)."""
    with open(dataset_info_json, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return f"{FORMAT}:{split}:{digest}"


def read(path: str, expected: str, *, num_examples: int | None = None,
         image_shape: tuple[int, ...] | None = None,
         num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(images, labels)`` from the cache at ``path``, or ``None`` if absent, stale or corrupt.

    Args:
      path: the ``.npz`` file.
      expected: the fingerprint it must carry (:func:`fingerprint`).
      num_examples, image_shape, num_classes: what the copy promises; when given, uint8
        images [num_examples, *image_shape] and int32 labels [num_examples] in
        [0, num_classes) are required.
    """
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != expected:
                logging.info("data cache %s is stale; decoding the split again", path)
                return None
            images, labels = z["images"], z["labels"]
        _check(images, labels, num_examples, image_shape, num_classes)
    except Exception as e:  # zipfile, zlib, numpy and our checks: all mean "rebuild it"
        logging.warning("data cache %s is corrupt (%s: %s); decoding the split again and "
                        "rewriting it", path, type(e).__name__, e)
        return None
    return images, labels


def _check(images, labels, num_examples, image_shape, num_classes) -> None:
    n = len(images) if num_examples is None else num_examples
    shape = images.shape[1:] if image_shape is None else tuple(image_shape)
    if images.dtype != np.uint8 or images.shape != (n, *shape):
        raise ValueError(f"images are {images.dtype} {images.shape}, expected uint8 "
                         f"{(n, *shape)}")
    if labels.dtype != np.int32 or labels.shape != (n,):
        raise ValueError(f"labels are {labels.dtype} {labels.shape}, expected int32 {(n,)}")
    if num_classes is not None and n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels span [{labels.min()}, {labels.max()}], expected "
                         f"[0, {num_classes})")


def write(path: str, images: np.ndarray, labels: np.ndarray, stamp: str) -> bool:
    """Writes the cache atomically (temporary file, then rename); ``False`` if not writable."""
    folder = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    except OSError as e:
        logging.warning("cannot write data cache in %s (%s); loads will decode again", folder, e)
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, labels=labels, fingerprint=np.array(stamp))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True

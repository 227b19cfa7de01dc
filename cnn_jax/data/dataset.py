"""The in-memory dataset type, split names with TFDS-style slices, and selecting examples."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np

__all__ = ["SPLITS", "Dataset", "DatasetInfo", "parse_split", "select"]

SPLITS = ("train", "test")
_SPLIT_RE = re.compile(r"^(?P<base>\w+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds.

    Attributes:
      name: the name ``load`` knows it by (derived sets add a suffix, e.g. ``"mnist/rotated"``).
      num_classes: labels lie in ``[0, num_classes)``.
      class_names: one name per class, in label order.
      image_shape: ``(H, W, C)`` of every image.
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]

    def __post_init__(self):
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} entries for "
                f"num_classes={self.num_classes} in dataset {self.name!r}"
            )


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images and labels in host memory. Treat the arrays as read-only: a loader may hand out
    views of its file buffer (IDX images are not writeable); copy before changing them.

    Attributes:
      images: uint8 [N, H, W, C].
      labels: int32 [N], in ``[0, info.num_classes)``.
      info: the metadata.
      source: how it was loaded, e.g. ``"idx:/usr/share/datasets/fashion-mnist"``,
        ``"tfds:/home/me/tensorflow_datasets"``, ``"synthetic"``.
      params: per-example transformation parameters of derived sets, each [N, ...]
        (``None`` for sets loaded as they are).
    """

    images: np.ndarray
    labels: np.ndarray
    info: DatasetInfo
    source: str
    params: Mapping[str, np.ndarray] | None = None

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != self.info.image_shape:
            raise ValueError(
                f"images must be uint8 [N, {', '.join(map(str, self.info.image_shape))}], got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if self.labels.dtype != np.int32 or self.labels.shape != (n,):
            raise ValueError(f"labels must be int32 [{n}], got {self.labels.dtype} "
                             f"{self.labels.shape}")
        for key, value in (self.params or {}).items():
            if len(value) != n:
                raise ValueError(f"params[{key!r}] has {len(value)} rows for {n} examples")

    def __len__(self) -> int:
        return len(self.labels)


def parse_split(split: str) -> tuple[str, slice]:
    """Splits ``"train[:90%]"`` into the base split and a slice over its examples.

    Bounds are example counts (``"test[:500]"``) or percentages (``"train[-10%:]"``);
    negative bounds count from the end, as in Python and TFDS.

    Args:
      split: ``"train"``, ``"test"``, optionally followed by ``[start:stop]``.

    Returns:
      ``(base, slice)``; the slice holds ints or ``"N%"`` strings (see :func:`select`).

    Raises:
      ValueError: the base is not one of :data:`SPLITS` or the slice is malformed.

    >>> parse_split("train[:90%]")
    ('train', slice(None, '90%', None))
    """
    match = _SPLIT_RE.match(split) if isinstance(split, str) else None
    if match is None or match["base"] not in SPLITS:
        raise ValueError(
            f"split must be one of {SPLITS}, optionally sliced like 'train[:90%]' or "
            f"'test[100:200]', got {split!r}"
        )
    return match["base"], slice(match["start"], match["stop"])


def _bound(value: int | str | None, n: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        percent = int(value[:-1])
        if not -100 <= percent <= 100:
            raise ValueError(f"split percentages must lie in [-100%, 100%], got {value!r}")
        # Nearest example boundary, halves rounded away from zero: the same N for every source.
        magnitude = (abs(percent) * n * 2 + 100) // 200
        return magnitude if percent >= 0 else -magnitude
    return int(value)


def select(ds: Dataset, index: slice | np.ndarray, source_note: str = "") -> Dataset:
    """The examples of ``ds`` at ``index`` (a slice as from :func:`parse_split`, or int indices).

    Args:
      ds: the dataset.
      index: a slice whose bounds are ints, ``"N%"`` strings or ``None``; or an int array.
      source_note: appended to ``ds.source`` to record the selection.

    Returns:
      A new dataset with copies of the selected images, labels and params.
    """
    if isinstance(index, slice):
        index = np.arange(len(ds))[slice(_bound(index.start, len(ds)), _bound(index.stop, len(ds)))]
    params = None if ds.params is None else {k: v[index] for k, v in ds.params.items()}
    return dataclasses.replace(
        ds, images=ds.images[index], labels=ds.labels[index], params=params,
        source=ds.source + source_note,
    )

"""Datasets by name (TFDS, local IDX files, synthetic), derived copies, on-device batching."""

from cnn_jax.data.dataset import SPLITS, Dataset, DatasetInfo, select
from cnn_jax.data.derived import rotated, scaled, shifted
from cnn_jax.data.idx import IdxError, read_idx
from cnn_jax.data.pipeline import epoch_batches, normalize, to_device
from cnn_jax.data.sources import DatasetNotFound, check_name, known_info, load, load_splits
from cnn_jax.data.synthetic import SYNTHETIC

__all__ = [
    "SPLITS",
    "SYNTHETIC",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFound",
    "IdxError",
    "check_name",
    "epoch_batches",
    "known_info",
    "load",
    "load_splits",
    "normalize",
    "read_idx",
    "rotated",
    "scaled",
    "select",
    "shifted",
    "to_device",
]

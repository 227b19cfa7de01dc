"""The typed, frozen configuration of one training run. Flags -> config lives in scripts/."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

MODES = ("auto", "min", "max")
VALIDATIONS = ("test", "holdout")


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """Keras 3 ``EarlyStopping`` arguments (same names, same meaning)."""

    monitor: str = "val_loss"
    min_delta: float = 0.0
    patience: int = 0
    mode: str = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: int = 0

    def __post_init__(self):
        _check(self.mode in MODES, "early_stopping.mode", self.mode, f"one of {MODES}")
        _check(self.patience >= 0, "early_stopping.patience", self.patience, ">= 0")
        _check(self.start_from_epoch >= 0, "early_stopping.start_from_epoch",
               self.start_from_epoch, ">= 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; two runs with equal configs give equal metrics on CPU.

    Attributes:
      model: registry name (``cnn_jax.models.names()``); ``model_kwargs`` its hyper-parameters.
      dataset: ``cnn_jax.data.load`` name; ``data_dir`` an optional local directory.
      validation: "test" (validate on the test split, as the lecture does) or "holdout"
        (a seeded ``validation_fraction`` carve-out of train).
      batch_size, epochs: as in Keras ``fit``; ``drop_remainder`` drops the last partial batch.
      optimizer: optax optimizer name; ``learning_rate`` and ``optimizer_kwargs`` its arguments
        (adam gets Keras's defaults b1=0.9, b2=0.999, eps=1e-7).
      early_stopping: Keras EarlyStopping settings, or None to train all ``epochs``.
      seed: the one seed of initialisation, shuffling and holdout split.
      num_devices: devices to shard the batch over (0: all local devices).
      checkpoint_every: save an orbax checkpoint every this many epochs (0: never).
      standardize: scale inputs to zero mean / unit variance per channel (train statistics).
    """

    model: str = "mlp"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    validation: str = "test"
    validation_fraction: float = 0.1
    batch_size: int = 256
    epochs: int = 100
    drop_remainder: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    optimizer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    early_stopping: EarlyStoppingConfig | None = None
    seed: int = 0
    num_devices: int = 0
    checkpoint_every: int = 1
    standardize: bool = False

    def __post_init__(self):
        _check(self.batch_size > 0, "batch_size", self.batch_size, "> 0")
        _check(self.epochs > 0, "epochs", self.epochs, "> 0")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        _check(self.validation in VALIDATIONS, "validation", self.validation,
               f"one of {VALIDATIONS}")
        _check(0 < self.validation_fraction < 1, "validation_fraction",
               self.validation_fraction, "in (0, 1)")
        _check(self.num_devices >= 0, "num_devices", self.num_devices, ">= 0")
        _check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``; a name that is no field goes into ``model_kwargs``."""
        fields = {f.name for f in dataclasses.fields(self)}
        model_changes = {k: v for k, v in changes.items() if k not in fields}
        direct = {k: v for k, v in changes.items() if k in fields}
        if model_changes:
            direct["model_kwargs"] = {**self.model_kwargs, **model_changes}
        return dataclasses.replace(self, **direct)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (tuples become lists), equal to its JSON round trip."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``."""
        d = dict(d)
        if d.get("early_stopping") is not None:
            d["early_stopping"] = EarlyStoppingConfig(**d["early_stopping"])
        d["model_kwargs"] = {k: tuple(v) if isinstance(v, list) else v
                             for k, v in d.get("model_kwargs", {}).items()}
        return cls(**d)


def _check(ok: bool, name: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")

"""The typed, frozen configuration of one training run. Flags -> config lives in scripts/."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MODES = ("auto", "min", "max")
VALIDATIONS = ("test", "holdout")
# Names of ``cnn_jax.training.steps.LOSSES``: the log-softmax cross-entropy (default) and
# Keras's clipped-probability one (``cnn_jax.training.keras``).
LOSSES = ("cross_entropy", "keras_categorical_crossentropy")
# Matmul/conv precisions (``jax.lax.Precision`` names); README "Precision" says what each
# means on CPU, GPU and TPU.
PRECISIONS = ("default", "high", "highest")

# The metrics training logs each epoch: what early stopping can monitor.
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")


class ConfigError(ValueError):
    """A bad configuration value, ``"FIELD=VALUE: PROBLEM"``.

    Attributes:
      field: dotted name, e.g. ``"batch_size"``, ``"early_stopping.patience"`` or
        ``"model_kwargs.features"`` (scripts map it back to the flag that set it).
      value: the bad value.
      problem: what is wrong and what is allowed.
    """

    def __init__(self, field: str, value: Any, problem: str):
        super().__init__(f"{field}={value!r}: {problem}")
        self.field, self.value, self.problem = field, value, problem


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
        _check_types(self)
        _check(self.mode in MODES, "early_stopping.mode", self.mode, f"one of {MODES}")
        _check(self.patience >= 0, "early_stopping.patience", self.patience, ">= 0")
        _check(math.isfinite(self.min_delta), "early_stopping.min_delta", self.min_delta,
               "a finite number")
        _check(self.baseline is None or math.isfinite(self.baseline), "early_stopping.baseline",
               self.baseline, "a finite number or None")
        _check(self.start_from_epoch >= 0, "early_stopping.start_from_epoch",
               self.start_from_epoch, ">= 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; two runs with equal configs give equal metrics on CPU.

    Attributes:
      model: registry name (``cnn_jax.models.names()``); ``model_kwargs`` its hyper-parameters
        (JSON-representable values; sequences are kept as tuples).
      model_module: an importable module (``"my_package.my_models"``) imported before the model
        is looked up, so that its ``@cnn_jax.models.register`` models exist; None: none.
      dataset: ``cnn_jax.data.load`` name; ``data_dir`` an optional local directory.
      validation: "test" (validate on the test split, as the lecture does) or "holdout"
        (a seeded ``validation_fraction`` carve-out of train).
      batch_size, epochs: as in Keras ``fit``; ``drop_remainder`` drops the last partial batch.
      optimizer: optax optimizer name or ``keras_adam`` (Keras's exact Adam);
        ``learning_rate`` and ``optimizer_kwargs`` its arguments (adam gets Keras's defaults
        b1=0.9, b2=0.999, eps=1e-7).
      loss: "cross_entropy" (log-softmax) or "keras_categorical_crossentropy" (Keras's, which
        clips probabilities; see ``cnn_jax.training.keras``).
      early_stopping: Keras EarlyStopping settings, or None to train all ``epochs``.
      seed: the one seed of initialisation, shuffling and holdout split.
      num_devices: devices to shard the batch over (0: all local devices).
      checkpoint_every: save an orbax checkpoint every this many epochs (0: never).
      standardize: scale inputs to zero mean / unit variance per channel (train statistics).
      precision: precision of every dot and convolution of the model, one of ``PRECISIONS``:
        "default" leaves it to JAX (``jax_default_matmul_precision`` when set, else the
        backend's fastest: TF32 on Ampere+ GPUs, one bf16 pass on TPUs; float32 on CPU);
        "high" and "highest" are ``lax.Precision.HIGH``/``HIGHEST``, passed to the model's
        ``precision`` argument.
      num_seeds: train this many copies of the model, seeds ``seed``, ``seed + 1``, ...,
        each initialised and shuffled by its own seed, in one vectorised (``vmap``) program
        (``cnn_jax.training.fit_seeds``); 1: an ordinary run. Needs ``validation="test"``
        (a holdout split depends on the seed, and the copies share one data set).
    """

    model: str = "mlp"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_module: str | None = None
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
    loss: str = "cross_entropy"
    early_stopping: EarlyStoppingConfig | None = None
    seed: int = 0
    num_devices: int = 0
    checkpoint_every: int = 1
    standardize: bool = False
    precision: str = "default"
    num_seeds: int = 1

    def __post_init__(self):
        _check_types(self)
        for name in ("model_kwargs", "optimizer_kwargs"):
            object.__setattr__(self, name, _plain(getattr(self, name), name, tuple))
        _check(self.batch_size > 0, "batch_size", self.batch_size, "> 0")
        _check(self.epochs > 0, "epochs", self.epochs, "> 0")
        _check(0 < self.learning_rate < math.inf, "learning_rate", self.learning_rate,
               "> 0 and finite")
        _check(0 <= self.seed < 2**32, "seed", self.seed, "in [0, 2**32)")
        _check(self.validation in VALIDATIONS, "validation", self.validation,
               f"one of {VALIDATIONS}")
        _check(0 < self.validation_fraction < 1, "validation_fraction",
               self.validation_fraction, "in (0, 1)")
        _check(self.loss in LOSSES, "loss", self.loss, f"one of {LOSSES}")
        _check(self.num_devices >= 0, "num_devices", self.num_devices, ">= 0")
        _check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")
        if self.early_stopping is not None:
            _check(self.early_stopping.monitor in MONITORS, "early_stopping.monitor",
                   self.early_stopping.monitor, f"one of the logged metrics {MONITORS}")
        _check(self.precision in PRECISIONS, "precision", self.precision,
               f"one of {PRECISIONS}")
        _check(self.num_seeds >= 1, "num_seeds", self.num_seeds, ">= 1")
        _check(self.seed + self.num_seeds <= 2**32, "num_seeds", self.num_seeds,
               f"such that seed + num_seeds - 1 < 2**32 (seed={self.seed})")
        _check(self.num_seeds == 1 or self.validation == "test", "num_seeds", self.num_seeds,
               "1 with validation='holdout' (its split depends on the seed; the vectorised "
               "seeds share one data set)")

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``; a name that is no field goes into ``model_kwargs``."""
        fields = {f.name for f in dataclasses.fields(self)}
        model_changes = {k: v for k, v in changes.items() if k not in fields}
        direct = {k: v for k, v in changes.items() if k in fields}
        if model_changes:
            direct["model_kwargs"] = {**self.model_kwargs, **model_changes}
        return dataclasses.replace(self, **direct)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: a JSON-ready nested dict (tuples become lists), as written to
        a run's ``config.json``. ``from_dict(json.loads(json.dumps(c.to_dict()))) == c``."""
        return _plain(dataclasses.asdict(self), "config", list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; fields missing from ``d`` take their defaults.

        Raises:
          ConfigError: a key that is no field, or a bad value.
        """
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(unknown[0], d[unknown[0]], "no such TrainConfig field")
        if isinstance(d.get("early_stopping"), Mapping):
            es = dict(d["early_stopping"])
            names = {f.name for f in dataclasses.fields(EarlyStoppingConfig)}
            unknown = sorted(set(es) - names)
            if unknown:
                raise ConfigError(f"early_stopping.{unknown[0]}", es[unknown[0]], "no such field")
            d["early_stopping"] = EarlyStoppingConfig(**es)
        return cls(**d)


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The fields where two ``to_dict`` forms differ, as ``"name: old -> new"`` lines.

    >>> config_diff(TrainConfig().to_dict(), TrainConfig(seed=2, model_kwargs={"units": 8}
    ...                                                  ).to_dict())
    ['model_kwargs.units: (missing) -> 8', 'seed: 0 -> 2']
    """
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(missing)"), new.get(key, "(missing)")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif a != b or isinstance(a, bool) != isinstance(b, bool):
            out.append(f"{prefix}{key}: {a if a == '(missing)' else repr(a)} -> "
                       f"{b if b == '(missing)' else repr(b)}")
    return out


def _check(ok: bool, name: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(name, value, f"must be {expected}")


# Field annotations (strings, as this module postpones them) -> accepted Python types.
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_types(obj) -> None:
    """Checks the scalar fields' types (NumPy scalars become Python ones, ints in float
    fields become floats) so that a config and its JSON form compare equal."""
    prefix = "early_stopping." if isinstance(obj, EarlyStoppingConfig) else ""
    for f in dataclasses.fields(obj):
        base, _, optional = str(f.type).partition(" | ")
        value = getattr(obj, f.name)
        if isinstance(value, np.generic):
            value = value.item()
        if base not in _TYPES or (value is None and optional == "None"):
            continue
        ok = isinstance(value, _TYPES[base]) and (base == "bool" or not isinstance(value, bool))
        article = "an" if base == "int" else "a"
        _check(ok, prefix + f.name, value, f"{article} {base}" + (" or None" if optional else ""))
        object.__setattr__(obj, f.name, float(value) if base == "float" else value)


def _plain(value: Any, field: str, sequence: type) -> Any:
    """``value`` with sequences as ``sequence`` (tuple or list) and mappings as dicts,
    checking that it holds only JSON-representable values."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return sequence(_plain(v, field, sequence) for v in value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{field}.{k}", sequence) for k, v in value.items()}
    raise ConfigError(field, value, "must be None, a bool, number or string, or a "
                      "list/tuple/dict (string keys) of these")

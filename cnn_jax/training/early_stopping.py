"""Early stopping with the semantics of Keras 3's ``keras.callbacks.EarlyStopping``.

At the end of every epoch (0-based ``epoch``), with the monitored value ``current``:

1. nothing happens if ``current`` is missing or ``epoch < start_from_epoch``;
2. if best weights were never kept, the current ones are kept (``best_epoch = epoch``);
3. ``wait += 1``; if ``current`` improves on ``best`` by more than ``min_delta`` (or ``best``
   is unset) it becomes ``best``, its weights are kept, and ``wait`` resets to 0 -- but only
   when it also beats ``baseline`` (if one is given);
4. otherwise training stops once ``wait >= patience`` and ``epoch > 0``.

At the end of training the kept weights are restored whenever ``restore_best_weights`` is
set, also when training ran all its epochs without stopping early. In ``mode="auto"`` the
direction comes from the name: ``loss`` is minimised, ``accuracy``/``acc`` maximised, any
other name needs an explicit mode (Keras raises likewise). Unlike Keras, an unknown mode is
an error rather than a warning and a fall-back to ``auto``.
"""

from __future__ import annotations

import dataclasses
import operator
import warnings
from typing import Any

from cnn_jax.config import EarlyStoppingConfig

_MAXIMISED = ("accuracy", "acc")


@dataclasses.dataclass
class EarlyStopping:
    """Stateful monitor; ``state_dict``/``from_state_dict`` make it checkpointable.

    The best weights themselves are held by the caller (the training loop keeps a copy of
    the parameters whenever ``update`` returns ``keep_weights=True``).
    """

    config: EarlyStoppingConfig
    wait: int = 0
    stopped_epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    has_best_weights: bool = False
    stop_training: bool = False

    def __post_init__(self):
        self._better = self._direction(self.config)
        # Keras stores min_delta with the sign of the direction.
        delta = abs(self.config.min_delta)
        self._delta = -delta if self._better is operator.lt else delta

    @staticmethod
    def _direction(config: EarlyStoppingConfig):
        if config.mode == "min":
            return operator.lt
        if config.mode == "max":
            return operator.gt
        name = config.monitor.removeprefix("val_")
        if name == "loss":
            return operator.lt
        if name in _MAXIMISED:
            return operator.gt
        raise ValueError(
            f"early_stopping.monitor={config.monitor!r}: cannot tell whether to minimise or "
            "maximise it; set early_stopping.mode to 'min' or 'max'"
        )

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        return reference is None or self._better(value - self._delta, reference)

    def update(self, epoch: int, logs: dict[str, float]) -> bool:
        """Processes the end of ``epoch`` (0-based); returns True if the current weights must
        be kept as the best ones. Sets ``stop_training`` when patience runs out."""
        current = logs.get(self.config.monitor)
        if current is None:
            warnings.warn(
                f"early stopping monitors {self.config.monitor!r}, which is not among the "
                f"metrics {sorted(logs)}", stacklevel=2,
            )
            return False
        if epoch < self.config.start_from_epoch:
            return False
        keep = False
        if self.config.restore_best_weights and not self.has_best_weights:
            self.has_best_weights, self.best_epoch, keep = True, epoch, True
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = float(current), epoch
            keep = keep or self.config.restore_best_weights
            self.has_best_weights = self.has_best_weights or keep
            if self.config.baseline is None or self._is_improvement(current, self.config.baseline):
                self.wait = 0
            return keep
        if self.wait >= self.config.patience and epoch > 0:
            self.stopped_epoch, self.stop_training = epoch, True
        return keep

    @property
    def restores_weights(self) -> bool:
        """True if the kept best weights replace the final ones at the end of training."""
        return self.config.restore_best_weights and self.has_best_weights

    def state_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in
                ("wait", "stopped_epoch", "best", "best_epoch", "has_best_weights",
                 "stop_training")}

    @classmethod
    def from_state_dict(cls, config: EarlyStoppingConfig, state: dict[str, Any]):
        return cls(config, **state)

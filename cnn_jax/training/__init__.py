"""Training: pure compiled steps, the epoch loop, early stopping, checkpoints, sweeps."""

from cnn_jax.training.early_stopping import EarlyStopping
from cnn_jax.training.loop import DeviceData, discard_run, fit, load_data, make_mesh
from cnn_jax.training.restore import Restored, restore, restore_params
from cnn_jax.training.seeds import fit_seeds
from cnn_jax.training.steps import (
    TrainState,
    create_train_state,
    evaluate,
    make_optimizer,
    train_epoch,
    train_step,
)

__all__ = [
    "DeviceData",
    "EarlyStopping",
    "Restored",
    "TrainState",
    "create_train_state",
    "discard_run",
    "evaluate",
    "fit",
    "fit_seeds",
    "load_data",
    "make_mesh",
    "make_optimizer",
    "restore",
    "restore_params",
    "train_epoch",
    "train_step",
]

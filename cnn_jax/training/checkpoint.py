"""Orbax checkpoints of a run: every epoch's full state, and the final parameters.

Layout in a run's workdir: ``checkpoints/<epoch>/`` (params, optimizer state, step, the
best-so-far params, plus JSON metadata: epoch, early-stopping state, metric history) and
``final/`` (the variables -- parameters and other collections -- the run's results refer to;
read them with ``cnn_jax.training.restore``). Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a killed run leaves the last complete
one readable.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "load_final_params", "save_final_params"]


class Checkpointer:
    """Saves and restores ``{"state": pytree, "meta": json}`` per epoch, keeping the last 2."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self._manager = ocp.CheckpointManager(
            os.path.abspath(directory),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_epoch(self) -> int | None:
        """The last completely written epoch, or None."""
        return self._manager.latest_step()

    def save(self, epoch: int, tree: Any, meta: dict[str, Any]) -> None:
        self._manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)))

    def restore(self, epoch: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """Restores epoch ``epoch`` into the structure, shapes and shardings of ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = self._manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return out["state"], out["meta"]

    def close(self) -> None:
        """Waits for pending asynchronous writes and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def save_final_params(workdir: str, params: Any) -> None:
    """Writes the run's final parameters to ``workdir/final`` (replacing an older copy)."""
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.abspath(os.path.join(workdir, "final")), params, force=True)


def load_final_params(workdir: str) -> Any:
    """Reads ``workdir/final`` as a pytree of arrays."""
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(os.path.abspath(os.path.join(workdir, "final")))

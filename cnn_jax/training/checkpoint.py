"""Orbax checkpoints of a run: every epoch's full state, and the final parameters.

Layout in a run's workdir: ``checkpoints/<epoch>/`` (params, optimizer state, step, the
best-so-far params, plus JSON metadata: epoch, early-stopping state, metric history) and
``final/`` (the variables -- parameters and other collections -- the run's results refer to;
read them with ``cnn_jax.training.restore``). Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a killed run leaves the last complete
one readable (the unfinished ``*.orbax-checkpoint-tmp-*`` folder is ignored).

A folder that cannot be read back -- missing or half-written files, a state of another
shape (a checkpoint of another configuration), corrupt bytes -- raises
:class:`CheckpointError` naming the folder; nothing is restored partially.
"""

from __future__ import annotations

import copy
import glob
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer", "load_final_params", "save_final_params"]

# what every complete epoch folder holds (orbax's Composite of "state" and "meta")
_EPOCH_FILES = (os.path.join("state", "_METADATA"), os.path.join("meta", "metadata"))
_MISMATCH = ("tree structures do not match", "Structure mismatch",
             "is not compatible with the stored shape")


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete, corrupt or from another configuration."""


def _one_line(error: Any) -> str:
    text = " ".join(str(error).strip().strip("'\"").split())
    return (text or type(error).__name__)[:300]


def _unfinished_writes(path: str) -> list[str]:
    return sorted(glob.glob(glob.escape(path) + ".orbax-checkpoint-tmp*"))


class Checkpointer:
    """Saves and restores ``{"state": pytree, "meta": json}`` per epoch, keeping the last 2."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self._directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self._directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_epoch(self) -> int | None:
        """The last completely written epoch, or None.

        Raises:
          CheckpointError: the newest epoch folder lacks files (copied or damaged after
            writing; orbax's own unfinished writes are temporary folders and are skipped).
        """
        epoch = self._manager.latest_step()
        if epoch is not None:
            folder = os.path.join(self._directory, str(epoch))
            missing = [f for f in _EPOCH_FILES if not os.path.isfile(os.path.join(folder, f))]
            if missing:
                earlier = [e for e in self._manager.all_steps() if e < epoch]
                raise CheckpointError(
                    f"{folder}: incomplete checkpoint (no {', '.join(missing)}); delete this "
                    "folder to resume "
                    + (f"after epoch {max(earlier) + 1}" if earlier else "from the start")
                    + ", or use a new workdir")
        return epoch

    def save(self, epoch: int, tree: Any, meta: dict[str, Any]) -> None:
        """Starts writing epoch ``epoch``; orbax finishes in the background. ``meta`` is copied
        first: a caller that changes it afterwards (appends the next epoch to a history) must
        not change what this epoch saved."""
        self._manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(copy.deepcopy(meta))))

    def restore_meta(self, epoch: int) -> dict[str, Any]:
        """Epoch ``epoch``'s metadata alone (to check whose checkpoint it is before the state).

        Raises:
          CheckpointError: its files are missing or corrupt. The message names the folder.
        """
        try:
            return self._manager.restore(epoch, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # orbax raises many types; all mean "unreadable"
            raise CheckpointError(
                f"{os.path.join(self._directory, str(epoch))}: cannot read the checkpoint's "
                f"metadata ({type(e).__name__}: {_one_line(e)}); delete the folder to resume "
                "from the checkpoint before it") from e

    def restore(self, epoch: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """Restores epoch ``epoch`` into the structure, shapes and shardings of ``like``.

        Raises:
          CheckpointError: the folder holds a state of another structure or shape (another
            configuration), or its files are missing or corrupt. The message names it.
        """
        folder = os.path.join(self._directory, str(epoch))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            out = self._manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        except Exception as e:  # orbax/tensorstore raise many types; all mean "unreadable"
            if any(m in str(e) for m in _MISMATCH):
                raise CheckpointError(
                    f"{folder}: the checkpoint does not fit this run's state (another model, "
                    f"optimizer or configuration wrote it): {_one_line(e)}; use a new "
                    "workdir") from e
            raise CheckpointError(f"{folder}: cannot read the checkpoint (missing or corrupt "
                                  f"files: {type(e).__name__}: {_one_line(e)}); delete the "
                                  "folder to resume from the checkpoint before it") from e
        got = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), out["state"])
        want = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), abstract)
        if got != want:  # orbax restores some targets (NumPy leaves) at the stored shape
            raise CheckpointError(f"{folder}: the checkpoint does not fit this run's state "
                                  "(another model, optimizer or configuration wrote it): "
                                  f"shapes {_one_line(got)} != {_one_line(want)}; use a new "
                                  "workdir")
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
    """Reads ``workdir/final`` as a pytree of arrays.

    Raises:
      CheckpointError: no ``final/`` (the run has not finished, or was killed while writing
        it), or its files are missing or corrupt. The message names the folder.
    """
    path = os.path.abspath(os.path.join(workdir, "final"))
    if not os.path.isdir(path):
        unfinished = _unfinished_writes(path)
        raise CheckpointError(
            f"{path}: no final parameters" + (
                f" (only an unfinished write, {os.path.basename(unfinished[0])}: the run was "
                "stopped while saving them; rerun its training command)" if unfinished else
                " (the run has not finished; rerun its training command)"))
    try:
        with ocp.StandardCheckpointer() as ckptr:
            return ckptr.restore(path)
    except Exception as e:  # orbax/tensorstore raise many types; all mean "unreadable"
        raise CheckpointError(f"{path}: cannot read the final parameters (missing or corrupt "
                              f"files: {type(e).__name__}: {_one_line(e)})") from e

"""``fit``: the epoch loop around the compiled epoch programs, with early stopping,
checkpoint/resume, metric logging and atomic result files."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax import io, models, plotting
from cnn_jax.config import TrainConfig, config_diff
from cnn_jax.data.pipeline import to_device
from cnn_jax.training.checkpoint import Checkpointer, save_final_params
from cnn_jax.training.early_stopping import EarlyStopping
from cnn_jax.training.steps import create_train_state, evaluate, make_optimizer, train_epoch

log = logging.getLogger(__name__)

FINISHED = ("completed", "stopped_early", "non_finite_loss")


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """Train and validation sets on the device(s), uint8 images [N,H,W,C] + int32 labels [N]."""

    train_images: jax.Array
    train_labels: jax.Array
    valid_images: jax.Array
    valid_labels: jax.Array
    num_classes: int
    mean: Any = None  # per-channel statistics for standardisation, or None
    std: Any = None

    @classmethod
    def from_arrays(cls, train_images, train_labels, valid_images, valid_labels, num_classes,
                    *, standardize: bool = False, mesh: Mesh | None = None) -> DeviceData:
        """Places numpy arrays on the devices of ``mesh`` (replicated), once."""
        sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        mean = std = None
        if standardize:
            pixels = train_images.reshape(-1, train_images.shape[-1]) / 255.0
            mean, std = pixels.mean(0).astype(np.float32), pixels.std(0).astype(np.float32)
            std = np.maximum(std, 1e-6)
        return cls(*to_device(train_images, train_labels, sharding),
                   *to_device(valid_images, valid_labels, sharding), num_classes, mean, std)


def load_data(config: TrainConfig, mesh: Mesh | None = None) -> DeviceData:
    """Loads ``config.dataset`` (train and validation per ``config.validation``) to device."""
    from cnn_jax import data  # the loaders pull in TFDS; import them only when needed

    train, valid = data.load_splits(
        config.dataset, validation=config.validation,
        validation_fraction=config.validation_fraction, seed=config.seed,
        data_dir=config.data_dir)
    log.info("data: %s train %d, valid %d (%s)", config.dataset, len(train.labels),
                 len(valid.labels), train.source)
    return DeviceData.from_arrays(train.images, train.labels, valid.images, valid.labels,
                                  train.info.num_classes, standardize=config.standardize,
                                  mesh=mesh)


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh with axis ``"batch"`` over the first ``num_devices`` devices (0: all)."""
    devices = jax.devices()
    if num_devices > len(devices):
        raise ValueError(f"num_devices={num_devices} but only {len(devices)} devices exist")
    return Mesh(np.array(devices[: num_devices or len(devices)]), ("batch",))


def model_arguments(config: TrainConfig) -> dict[str, Any]:
    """``config.model_kwargs`` plus ``precision`` unless it is "default" (the model's own
    default then: JAX's), so models without a ``precision`` argument train at "default".

    Raises:
      ValueError: "high"/"highest" for a model without a ``precision`` argument, or a
        ``precision`` in ``model_kwargs`` as well.
    """
    kwargs = dict(config.model_kwargs)
    if config.precision == "default":
        return kwargs
    if "precision" in kwargs:
        raise ValueError(f"precision={config.precision!r} and model_kwargs precision="
                         f"{kwargs['precision']!r}: set it in one place (the precision field)")
    if "precision" not in models.arguments(config.model):
        raise ValueError(f"precision={config.precision!r}: model {config.model!r} has no "
                         "precision argument; use precision='default'")
    return {**kwargs, "precision": config.precision}


def eval_batch_size(batch_size: int, mesh: Mesh) -> int:
    """Evaluation batch: the training batch (as Keras validates), a multiple of the devices."""
    d = mesh.devices.size
    return -(-batch_size // d) * d


def fit(config: TrainConfig, workdir: str, *, data: DeviceData | None = None,
        mesh: Mesh | None = None, should_stop: Callable[[], bool] | None = None,
        restart: bool = False, log_steps: bool = False) -> dict[str, Any]:
    """Trains ``config.model`` and writes the run into ``workdir``.

    Files: ``config.json`` (the canonical ``config.to_dict()``), ``model.json`` (what
    :func:`cnn_jax.training.restore` needs besides the config: ``num_classes``, input shape,
    standardisation ``mean``/``std``), ``metrics.jsonl`` (one line per epoch: the source of
    truth), ``tensorboard/`` (the same, as TensorBoard events), ``results.json``,
    ``figures/history.png``, ``checkpoints/`` and ``final/`` (all variable collections).
    Nothing is written before the configuration is known to be whole: the model, optimizer
    and early stopping are built and the model initialised first.

    Rerunning on the same workdir resumes from the last checkpoint (same final metrics as
    an uninterrupted run) and returns a finished run's results at once; a workdir holding
    another configuration is an error listing the fields that differ.

    Args:
      config: the run.
      workdir: its folder.
      data: the data on device (default: ``load_data(config, mesh)``).
      mesh: the devices (default: ``make_mesh(config.num_devices)``).
      should_stop: asked after every epoch (once its checkpoint is saved); when it returns
        True the run ends with ``KeyboardInterrupt`` and no results, ready to resume
        (scripts/train.py wires it to Ctrl-C).
      restart: discard a previous run in ``workdir`` (its files listed in ``RUN_FILES``)
        instead of resuming or refusing it.
      log_steps: also log every optimizer step's loss and accuracy to TensorBoard.

    Returns:
      The results dict (also in ``results.json``); ``train_*``/``valid_*`` are the final
      weights re-evaluated on each whole set (``metrics.jsonl`` has the per-epoch logs).
    """
    if config.num_seeds != 1:
        raise ValueError(f"num_seeds={config.num_seeds}: fit trains one seed; "
                         "training.fit_seeds trains several in one program")
    if not restart:
        finished = finished_run(config, workdir)
        if finished is not None:
            return finished

    models.import_module(config.model_module)
    mesh = mesh or make_mesh(config.num_devices)
    data = data or load_data(config, mesh)
    model, tx = build(config, data)
    stopper = EarlyStopping(config.early_stopping) if config.early_stopping else None
    init_key, epoch_root = jax.random.split(jax.random.key(config.seed))
    state = create_train_state(model, tx, init_key, data.train_images.shape[1:])
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    param_count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))

    # With several processes (jax.distributed) every one computes the same metrics; only
    # process 0 writes the run's files, and orbax coordinates the checkpoints.
    primary = jax.process_index() == 0
    if primary:
        if restart:
            discard_run(workdir)
        write_start(workdir, config, data)
    barrier("fit: workdir ready")  # no process reads checkpoints before a restart's removal

    best, history, start = None, [], 0
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints")) if config.checkpoint_every else None
    if ckpt is not None and ckpt.latest_epoch() is not None:
        tree, meta = ckpt.restore(ckpt.latest_epoch(), {"state": state,
                                                        "best": state.variables})
        state, history, start = tree["state"], meta["history"], meta["epoch"] + 1
        if stopper is not None:
            stopper = EarlyStopping.from_state_dict(config.early_stopping, meta["early_stopping"])
            best = tree["best"] if stopper.has_best_weights else None
        log.info("%s: resuming after epoch %d", workdir, start)

    n_train = data.train_images.shape[0]
    norm = dict(mean=data.mean, std=data.std, mesh=mesh)
    run_epoch = jax.jit(functools.partial(
        train_epoch, batch_size=config.batch_size, drop_remainder=config.drop_remainder,
        loss=config.loss, per_step=log_steps, **norm), donate_argnums=0)
    run_eval = jax.jit(functools.partial(
        evaluate, apply_fn=state.apply_fn,
        batch_size=eval_batch_size(config.batch_size, mesh), loss=config.loss, **norm))
    status, message = "completed", ""
    t_run = time.perf_counter()
    stopped = stopper is not None and stopper.stop_training
    board = TensorBoard(os.path.join(workdir, "tensorboard") if primary else None)
    try:
        for epoch in range(start, 0 if stopped else config.epochs):
            t0 = time.perf_counter()
            step0 = int(state.step)
            state, train_m = run_epoch(state, data.train_images, data.train_labels,
                                       jax.random.fold_in(epoch_root, epoch))
            train_m = jax.device_get(train_m)
            t_train = time.perf_counter() - t0
            val_m = jax.device_get(run_eval(state.variables, data.valid_images,
                                            data.valid_labels))
            dt = time.perf_counter() - t0
            logs = {"loss": float(train_m["loss"]), "accuracy": float(train_m["accuracy"]),
                    "val_loss": float(val_m["loss"]), "val_accuracy": float(val_m["accuracy"])}
            history.append({"epoch": epoch + 1, **logs, "epoch_time": dt,
                            "train_time": t_train, "samples_per_s": n_train / t_train})
            if not all(math.isfinite(v) for v in logs.values()):
                status = "non_finite_loss"
                message = f"loss became non-finite at epoch {epoch + 1}: {logs}"
                log.error("%s", message)
                if primary:
                    io.write_jsonl(os.path.join(workdir, "metrics.jsonl"), history)
                break
            if stopper is not None and stopper.update(epoch, logs):
                best = jax.tree.map(jnp.copy, state.variables)
            last = epoch + 1 == config.epochs or (stopper is not None and stopper.stop_training)
            if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or last):
                ckpt.save(epoch, {"state": state,
                                  "best": state.variables if best is None else best},
                          {"epoch": epoch, "history": history,
                           "early_stopping": stopper.state_dict() if stopper else None})
            if primary:
                io.write_jsonl(os.path.join(workdir, "metrics.jsonl"), history)
            board.epoch(history[-1], step0, train_m if log_steps else None)
            log.info("%s", _progress(history, config.epochs))
            if stopper is not None and stopper.stop_training:
                break
            if should_stop is not None and should_stop() and epoch + 1 < config.epochs:
                raise KeyboardInterrupt(f"{workdir}: interrupted after epoch {epoch + 1}")
    finally:
        board.close()
        if ckpt is not None:
            ckpt.close()

    restores = stopper is not None and stopper.restores_weights and best is not None
    final = best if restores else state.variables
    train_eval = jax.device_get(run_eval(final, data.train_images, data.train_labels))
    valid_eval = jax.device_get(run_eval(final, data.valid_images, data.valid_labels))
    save_final_params(workdir, final)
    results = run_results(
        config, stopper, history, status, message, param_count=param_count,
        restores=restores, train_eval=train_eval, valid_eval=valid_eval,
        wall_time=time.perf_counter() - t_run + sum(r["epoch_time"] for r in history[:start]),
        devices=int(mesh.devices.size))
    if primary:
        write_end(workdir, history, results)
    barrier("fit: results written")  # every process returns once the run is complete
    return results


def finished_run(config: TrainConfig, workdir: str) -> dict[str, Any] | None:
    """The results of ``config``'s finished run in ``workdir``, or None if there is none.

    Raises:
      ValueError: ``workdir`` holds a run of another configuration (the fields that differ
        are listed).
    """
    saved = saved_config(workdir)
    if saved is None:
        return None
    diff = config_diff(saved, config.to_dict())
    if diff:
        raise ValueError(f"workdir {workdir!r} holds a run with another configuration "
                         f"(saved -> new: {'; '.join(diff)}); use a new workdir, or "
                         "restart=True (--restart) to discard the old run")
    path = os.path.join(workdir, "results.json")
    if os.path.exists(path):
        results = io.read_json(path)
        if results.get("status") in FINISHED:
            log.info("%s: finished already (%s)", workdir, results["status"])
            return results
    return None


def build(config: TrainConfig, data: DeviceData):
    """``(model, optimizer)`` of ``config`` for ``data``'s images and classes."""
    model = models.check(config.model, model_arguments(config), num_classes=data.num_classes,
                         input_shape=data.train_images.shape[1:])
    return model, make_optimizer(config.optimizer, config.learning_rate,
                                 **config.optimizer_kwargs)


def write_start(workdir: str, config: TrainConfig, data: DeviceData) -> None:
    """``config.json`` and ``model.json`` (classes, input shape, standardisation)."""
    io.write_json(os.path.join(workdir, "config.json"), config.to_dict())
    io.write_json(os.path.join(workdir, "model.json"), {
        "num_classes": int(data.num_classes),
        "input_shape": list(data.train_images.shape[1:]),
        "mean": None if data.mean is None else np.asarray(data.mean).tolist(),
        "std": None if data.std is None else np.asarray(data.std).tolist()})


def run_results(config: TrainConfig, stopper: EarlyStopping | None, history: list[dict],
                status: str, message: str, *, param_count: int, restores: bool,
                train_eval: dict, valid_eval: dict, wall_time: float,
                devices: int) -> dict[str, Any]:
    """A finished run's ``results.json`` dict (``fit`` documents the keys)."""
    if stopper is not None and stopper.stop_training and status == "completed":
        status = "stopped_early"
    return {
        "status": status, "message": message, "model": config.model,
        "param_count": param_count, "epochs_run": len(history),
        "best_epoch": (stopper.best_epoch + 1) if stopper else len(history),
        "stopped_epoch": (stopper.stopped_epoch + 1) if stopper and stopper.stop_training else 0,
        "final_weights_epoch": (stopper.best_epoch + 1) if restores else len(history),
        "train_loss": float(train_eval["loss"]), "train_accuracy": float(train_eval["accuracy"]),
        "valid_loss": float(valid_eval["loss"]), "valid_accuracy": float(valid_eval["accuracy"]),
        "wall_time": wall_time, "devices": devices, "backend": jax.default_backend(),
    }


def write_end(workdir: str, history: list[dict], results: dict[str, Any]) -> None:
    """``figures/history.png`` (if any epoch ran) and ``results.json``."""
    if history:
        plotting.plot_history(history, os.path.join(workdir, "figures", "history.png"))
    io.write_json(os.path.join(workdir, "results.json"), results)


def barrier(name: str) -> None:
    """Waits for every process (a no-op with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# What fit writes into a workdir; restart=True removes exactly these. (fit_seeds keeps the
# checkpoints of its vectorised run in its first unfinished member's seeds_checkpoints.)
RUN_FILES = ("config.json", "model.json", "metrics.jsonl", "results.json", "checkpoints",
             "final", "figures", "tensorboard", "seeds_checkpoints")


def saved_config(workdir: str) -> dict[str, Any] | None:
    """The canonical form of the configuration saved in ``workdir``, or None if none is."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    raw = io.read_json(path)
    try:
        return TrainConfig.from_dict(raw).to_dict()  # fills fields added since it was saved
    except (ValueError, TypeError):
        return raw


def discard_run(workdir: str, keep: tuple[str, ...] = ()) -> None:
    """Removes a run's files (``RUN_FILES`` but ``keep``) from ``workdir``; other files stay."""
    for name in (n for n in RUN_FILES if n not in keep):
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    log.info("%s: previous run discarded (restart)", workdir)


class TensorBoard:
    """TensorBoard event files (tensorboardX; no TensorFlow): every epoch's logged metrics
    at step = epoch, and optionally every optimizer step's ``step/loss``/``step/accuracy``.

    ``metrics.jsonl`` stays the source of truth; a resumed run appends a new event file.
    Without tensorboardX installed it warns once and writes nothing; ``logdir`` None
    writes nothing either (a process other than 0).
    """

    def __init__(self, logdir: str | None):
        self._logdir, self._writer = logdir, None
        if logdir is None:
            return
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            log.warning("tensorboardX is not installed: no TensorBoard events "
                        "(pip install tensorboardX); metrics.jsonl has every epoch")
            self._logdir = None

    def epoch(self, row: dict[str, Any], step0: int, per_step: dict[str, Any] | None) -> None:
        """Writes one epoch's ``row`` (a ``metrics.jsonl`` line) and its per-step metrics
        (``step_loss``/``step_accuracy`` arrays [steps], steps numbered from ``step0 + 1``)."""
        if self._logdir is None:
            return
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(self._logdir)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time",
                    "samples_per_s"):
            self._writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])
        if per_step is not None:
            for i, (loss, acc) in enumerate(zip(per_step["step_loss"],
                                                per_step["step_accuracy"]), step0 + 1):
                self._writer.add_scalar("step/loss", float(loss), i)
                self._writer.add_scalar("step/accuracy", float(acc), i)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _progress(history, epochs: int) -> str:
    r = history[-1]
    mean_time = float(np.mean([h["epoch_time"] for h in history[-5:]]))
    eta = mean_time * (epochs - r["epoch"])
    return (f"epoch {r['epoch']:3d}/{epochs}  loss {r['loss']:.4f}  acc {r['accuracy']:.4f}  "
            f"val_loss {r['val_loss']:.4f}  val_acc {r['val_accuracy']:.4f}  "
            f"{r['samples_per_s']:,.0f} samples/s  {r['epoch_time']:.2f}s  "
            f"ETA <= {eta / 60:.1f} min")

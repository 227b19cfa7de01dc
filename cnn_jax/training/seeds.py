"""Several seeds as one program: ``fit_seeds`` trains ``num_seeds`` copies of a model with
``jax.vmap`` over the train state, so one compiled epoch advances every copy.

Member ``i`` is the run of ``config.replace(seed=config.seed + i, num_seeds=1)``: it is
initialised and shuffled by its own seed exactly as ``fit`` would (the same keys), and has
its own Keras early-stopping state. A member that stops (or whose loss becomes non-finite)
is frozen: the vectorised epoch still computes it, but its parameters, optimizer state and
step are kept; with ``restore_best_weights`` each member keeps its own best weights. Each
member's folder gets the files of a separate run (``config.json`` of that separate run,
``model.json``, ``metrics.jsonl``, ``results.json``, ``figures/history.png``, ``final/``),
so ``fit`` on one of them reports it finished, and the sweep summary reads them.

Members already finished in their folders are skipped. The vectorised run of the others
is checkpointed every ``config.checkpoint_every`` epochs (and when it ends) into
``seeds_checkpoints/`` of its first member's folder: the stacked state [M, ...], the best
weights, and as metadata each member's config, history, status, frozen flag and early
stopping. Rerunning resumes from the last one (each ``metrics.jsonl`` is rewritten from
it) and ends exactly as an uninterrupted run. The members whose results were written
before a stop are left out of the resumed program (the first member's results are written
last, so its folder keeps the checkpoint until then); a checkpoint that lacks a member to
train (another ``seed``, more seeds) is a ``CheckpointError`` naming its folder. Without
checkpoints (``checkpoint_every=0``) an interrupted run starts its members over. The time
columns (``epoch_time``, ``samples_per_s``, ``wall_time``) are those of the shared program.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax import io, models
from cnn_jax.config import TrainConfig, config_diff
from cnn_jax.training.checkpoint import Checkpointer, CheckpointError, save_final_params
from cnn_jax.training.early_stopping import EarlyStopping
from cnn_jax.training.loop import (
    DeviceData,
    barrier,
    build,
    discard_run,
    eval_batch_size,
    finished_run,
    load_data,
    make_mesh,
    run_results,
    saved_config,
    write_end,
    write_start,
)
from cnn_jax.training.steps import create_train_state, evaluate, train_epoch

log = logging.getLogger(__name__)

__all__ = ["fit_seeds", "member_configs", "members_epoch"]

CHECKPOINTS = "seeds_checkpoints"  # in the first trained member's folder


def member_configs(config: TrainConfig) -> list[TrainConfig]:
    """The separate runs ``fit_seeds(config, ...)`` trains: seeds ``config.seed + i``."""
    return [config.replace(seed=config.seed + i, num_seeds=1) for i in range(config.num_seeds)]


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``mask`` [M] is True, else ``old``, member by member (leading axis)."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(-1, *(1,) * (a.ndim - 1)), a, b), new, old)


def _member(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda a: a[i], tree)


def members_epoch(state, active, images, labels, roots, epoch, **kwargs):
    """One epoch of every member: ``train_epoch`` under ``vmap``.

    Args:
      state: the members' ``TrainState``, every leaf with a leading [M] axis.
      active: bool [M]; a member not active keeps its state (it is frozen).
      images, labels: the shared data set, [N, H, W, C] and [N].
      roots: [M] PRNG keys; member ``i``'s epoch key is ``fold_in(roots[i], epoch)``, as
        in ``fit``.
      epoch: 0-based epoch number (a traced int: one program for every epoch).
      **kwargs: ``train_epoch``'s keyword arguments (``batch_size``, ``mesh``, ...).

    Returns:
      ``(state, metrics)``, each metric [M].
    """
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(roots, epoch)
    run = functools.partial(train_epoch, **kwargs)
    new, metrics = jax.vmap(run, in_axes=(0, None, None, 0))(state, images, labels, keys)
    return _select(active, new, state), metrics


def fit_seeds(config: TrainConfig, workdirs: Sequence[str], *, data: DeviceData | None = None,
              mesh: Mesh | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Trains the members ``member_configs(config)`` in one vectorised program.

    Args:
      config: the run, ``num_seeds`` >= 1 of them.
      workdirs: one folder per member (e.g. the sweep's ``seed_K``), ``num_seeds`` of them.
      data: the data on device (default: ``load_data(config, mesh)``).
      mesh: the devices (default: ``make_mesh(config.num_devices)``); the batch is sharded
        over them as in ``fit``, the members are not.
      should_stop: asked after every epoch (once its checkpoint is saved); True ends the
        run with ``KeyboardInterrupt`` and no results for the unfinished members, ready to
        resume from the last checkpoint.

    Returns:
      Each member's results (``fit``'s dict, also in its ``results.json``).

    Raises:
      ValueError: ``len(workdirs) != num_seeds``, or a folder holding another run.
      CheckpointError: a checkpoint of other members, or one that cannot be read.
    """
    if len(workdirs) != config.num_seeds:
        raise ValueError(f"workdirs: {len(workdirs)} folders for num_seeds="
                         f"{config.num_seeds}; give one per member")
    configs = member_configs(config)
    results: list[dict[str, Any] | None] = [finished_run(c, d)
                                            for c, d in zip(configs, workdirs)]
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results
    configs, workdirs = [configs[i] for i in todo], [workdirs[i] for i in todo]
    models.import_module(config.model_module)
    mesh = mesh or make_mesh(config.num_devices)
    data = data or load_data(config, mesh)
    for i, r in zip(todo, _train(configs, workdirs, data, mesh, should_stop)):
        results[i] = r
    return results


def _train(configs: list[TrainConfig], workdirs: list[str], data: DeviceData, mesh: Mesh,
           should_stop: Callable[[], bool] | None) -> list[dict[str, Any]]:
    """The vectorised loop over ``configs`` (equal but for their seeds)."""
    config, m = configs[0], len(configs)
    model, tx = build(config, data)
    shape = data.train_images.shape[1:]
    # fit's keys, member by member: init_key, epoch_root = split(key(seed))
    keys = jnp.stack([jax.random.split(jax.random.key(c.seed)) for c in configs])
    state = jax.vmap(lambda k: create_train_state(model, tx, k, shape))(keys[:, 0])
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(state, replicated)
    roots = jax.device_put(keys[:, 1], replicated)
    param_count = sum(int(np.prod(p.shape[1:])) for p in jax.tree.leaves(state.params))
    primary = jax.process_index() == 0

    es = config.early_stopping
    stoppers = [EarlyStopping(es) if es else None for _ in range(m)]
    histories: list[list[dict]] = [[] for _ in range(m)]
    status, messages = ["completed"] * m, [""] * m
    active = np.ones(m, bool)
    best, start, wall_before = None, 0, 0.0
    ckpt = (Checkpointer(os.path.join(workdirs[0], CHECKPOINTS)) if config.checkpoint_every
            else None)
    if ckpt is not None and ckpt.latest_epoch() is not None:
        epoch = ckpt.latest_epoch()
        meta = ckpt.restore_meta(epoch)
        pick = _members_in(meta["members"], configs, os.path.join(workdirs[0], CHECKPOINTS))
        n = len(meta["members"])  # more than m when some of them have finished since
        like = state if n == m else jax.tree.map(
            lambda a: jax.ShapeDtypeStruct((n, *a.shape[1:]), a.dtype, sharding=a.sharding),
            state)
        tree, _ = ckpt.restore(epoch, {"state": like, "best": like.variables})
        if n != m:
            tree = jax.device_put(jax.tree.map(lambda a: a[np.asarray(pick)], tree), replicated)
        state, start, wall_before = tree["state"], epoch + 1, meta["wall_time"]
        best = tree["best"] if meta["has_best"] else None
        histories, status, messages = ([meta[k][i] for i in pick]
                                       for k in ("history", "status", "message"))
        active = np.array(meta["active"], bool)[pick]
        stoppers = [EarlyStopping.from_state_dict(es, meta["early_stopping"][i]) if es else None
                    for i in pick]
        log.info("%s: resuming %d seeds after epoch %d", workdirs[0], m, start)
    if primary:
        for c, d, h in zip(configs, workdirs, histories):
            if start == 0 and saved_config(d) is not None:
                # an unfinished run with no checkpoint yet (ckpt holds its folder open)
                discard_run(d, keep=(CHECKPOINTS,) if ckpt else ())
            write_start(d, c, data)
            if start:
                io.write_jsonl(os.path.join(d, "metrics.jsonl"), h)  # the checkpoint's epochs
    barrier("fit_seeds: workdirs ready")

    norm = dict(mean=data.mean, std=data.std, mesh=mesh)
    run_epoch = jax.jit(functools.partial(
        members_epoch, batch_size=config.batch_size, drop_remainder=config.drop_remainder,
        loss=config.loss, **norm), donate_argnums=0)
    run_eval = jax.jit(jax.vmap(functools.partial(
        evaluate, apply_fn=state.apply_fn, batch_size=eval_batch_size(config.batch_size, mesh),
        loss=config.loss, **norm), in_axes=(0, None, None)))
    keep_best = jax.jit(_select)
    n_train = data.train_images.shape[0]
    t_run = time.perf_counter()
    try:
        for epoch in range(start, config.epochs if active.any() else start):
            t0 = time.perf_counter()
            ran = active.copy()
            state, train_m = run_epoch(state, ran, data.train_images, data.train_labels,
                                       roots, epoch)
            train_m = jax.device_get(train_m)
            t_train = time.perf_counter() - t0
            val_m = jax.device_get(run_eval(state.variables, data.valid_images,
                                            data.valid_labels))
            dt = time.perf_counter() - t0
            keep = np.zeros(m, bool)
            for i in np.flatnonzero(ran):
                logs = {"loss": float(train_m["loss"][i]),
                        "accuracy": float(train_m["accuracy"][i]),
                        "val_loss": float(val_m["loss"][i]),
                        "val_accuracy": float(val_m["accuracy"][i])}
                histories[i].append({"epoch": epoch + 1, **logs, "epoch_time": dt,
                                     "train_time": t_train, "samples_per_s": n_train / t_train})
                if not all(math.isfinite(v) for v in logs.values()):
                    status[i], active[i] = "non_finite_loss", False
                    messages[i] = f"loss became non-finite at epoch {epoch + 1}: {logs}"
                    log.error("%s: %s", workdirs[i], messages[i])
                elif stoppers[i] is not None:
                    keep[i] = stoppers[i].update(epoch, logs)
                    active[i] = not stoppers[i].stop_training
            if keep.any():
                best = keep_best(keep, state.variables,
                                 state.variables if best is None else best)
            last = epoch + 1 == config.epochs or not active.any()
            if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or last):
                ckpt.save(epoch, {"state": state,
                                  "best": state.variables if best is None else best}, {
                    "epoch": epoch, "members": [c.to_dict() for c in configs],
                    "history": histories, "status": status, "message": messages,
                    "active": active.tolist(), "has_best": best is not None,
                    "early_stopping": [s.state_dict() if s else None for s in stoppers],
                    "wall_time": wall_before + time.perf_counter() - t_run})
            if primary:
                for i in np.flatnonzero(ran):
                    io.write_jsonl(os.path.join(workdirs[i], "metrics.jsonl"), histories[i])
            log.info("seeds: epoch %d/%d, %d of %d members trained, val_loss %s, %.2fs",
                     epoch + 1, config.epochs, ran.sum(), m,
                     " ".join(f"{val_m['loss'][i]:.4f}" for i in np.flatnonzero(ran)), dt)
            if last:
                break
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt(f"{workdirs[0]}...: interrupted after epoch {epoch + 1}")
    finally:
        if ckpt is not None:
            ckpt.close()

    restores = np.array([s is not None and s.restores_weights and best is not None
                         for s in stoppers])
    final = (_select(jnp.asarray(restores), best, state.variables) if restores.any()
             else state.variables)
    train_eval = jax.device_get(run_eval(final, data.train_images, data.train_labels))
    valid_eval = jax.device_get(run_eval(final, data.valid_images, data.valid_labels))
    wall_time = wall_before + time.perf_counter() - t_run
    out = [None] * m
    # The checkpoint's folder last: a run stopped between two members' results resumes
    # from it, the members finished by then left out (``_members_in``).
    for i in [*range(1, m), 0]:
        c, d = configs[i], workdirs[i]
        save_final_params(d, _member(final, i))
        results = run_results(
            c, stoppers[i], histories[i], status[i], messages[i], param_count=param_count,
            restores=bool(restores[i]), train_eval=_member(train_eval, i),
            valid_eval=_member(valid_eval, i), wall_time=wall_time,
            devices=int(mesh.devices.size))
        if primary:
            write_end(d, histories[i], results)
        out[i] = results
    barrier("fit_seeds: results written")
    return out


def _members_in(saved: list[dict], configs: list[TrainConfig], folder: str) -> list[int]:
    """The positions of ``configs`` among a checkpoint's members (``to_dict`` forms): all of
    them, or fewer when some finished since (a run stopped between two members' results)
    or fewer seeds are asked.

    Raises:
      CheckpointError: naming ``folder``, when one of ``configs`` is not a saved member.
    """
    want = [c.to_dict() for c in configs]
    if all(w in saved for w in want):
        return [saved.index(w) for w in want]
    seeds = [c["seed"] for c in saved], [c["seed"] for c in want]
    by_seed = {c["seed"]: c for c in saved}
    diff = ([f"seeds: {seeds[0]} -> {seeds[1]}"] if not set(seeds[1]) <= set(seeds[0]) else
            list(dict.fromkeys(line for w in want  # each difference once
                               for line in config_diff(by_seed[w["seed"]], w))))
    raise CheckpointError(f"{folder}: a checkpoint of other members (saved -> new: "
                          f"{'; '.join(diff)}); delete the folder to train these "
                          "members from the start, or rerun the command that wrote it")

"""Train a model: ``python scripts/train.py --flagfile=experiments/NAME.flags``.

Flags -> a typed ``TrainConfig`` -> ``cnn_jax.training.fit`` (or ``run_sweep`` with
``--sweep``). The whole configuration is checked before any data is loaded, anything
compiled or any file written; a bad flag value is one line
``train.py: error: --FLAG=VALUE: what is wrong and what is allowed`` with exit code 2.
Flags on the command line override the flagfile's, wherever they stand.
Rerunning a command resumes its run (or reports it finished); ``--restart`` starts over.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import sys
import threading

from _cli import fail, run, show_progress, usage_error
from absl import flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS


def sweep_syntax() -> str:
    from cnn_jax.training.sweep import SYNTAX

    return SYNTAX

flags.DEFINE_string("workdir", None, "Folder for config.json, metrics, results, checkpoints.")
flags.DEFINE_string("model", "cnn", "Model name (see cnn_jax.models.names(); cnn_bn is the "
                    "CNN with BatchNorm).")
flags.DEFINE_multi_string("model_arg", [], "Model hyper-parameter as name=python_literal; "
                          "repeat the flag for several, e.g. --model_arg=features=(32,64).")
flags.DEFINE_string("model_module", None, "Importable module (on PYTHONPATH) whose "
                    "@cnn_jax.models.register models --model may name, e.g. my_pkg.my_models.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset name for cnn_jax.data.load.")
flags.DEFINE_string("data_dir", None, "Local data folder (TFDS-prepared or IDX files).")
flags.DEFINE_string("validation", "test", "'test' (validate on test, as the lecture) or "
                    "'holdout' (a seeded carve-out of train).")
flags.DEFINE_float("validation_fraction", 0.1, "Holdout fraction of train.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_integer("epochs", 100, "Maximum number of epochs.")
flags.DEFINE_boolean("drop_remainder", False, "Drop the last partial batch (Keras keeps it).")
flags.DEFINE_string("optimizer", "adam", "optax optimizer name, or keras_adam (Keras's exact "
                    "Adam: epsilon before bias correction).")
flags.DEFINE_string("loss", "cross_entropy", "cross_entropy (log-softmax) or "
                    "keras_categorical_crossentropy (Keras's: clips probabilities to "
                    "[1e-7, 1-1e-7]).")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_multi_string("optimizer_arg", [], "Optimizer argument as name=python_literal.")
flags.DEFINE_boolean("early_stopping", False, "Use Keras-style early stopping.")
flags.DEFINE_string("es_monitor", "val_loss", "EarlyStopping monitor.")
flags.DEFINE_float("es_min_delta", 0.0, "EarlyStopping min_delta.")
flags.DEFINE_integer("es_patience", 0, "EarlyStopping patience.")
flags.DEFINE_string("es_mode", "auto", "EarlyStopping mode: auto, min or max.")
flags.DEFINE_float("es_baseline", None, "EarlyStopping baseline.")
flags.DEFINE_boolean("es_restore_best_weights", False, "EarlyStopping restore_best_weights.")
flags.DEFINE_integer("es_start_from_epoch", 0, "EarlyStopping start_from_epoch.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and holdout split.")
flags.DEFINE_integer("num_seeds", 1, "Train seeds --seed .. --seed+N-1 as N copies of the "
                     "model in one vectorised program, into WORKDIR/seed_K (with --sweep: "
                     "WORKDIR/<point>-seed_K), with a seed summary (README 'Seeds in one "
                     "program').")
flags.DEFINE_integer("num_devices", 0, "Devices to shard the batch over (0: all local).")
flags.DEFINE_integer("checkpoint_every", 1, "Checkpoint every N epochs (0: never).")
flags.DEFINE_boolean("standardize", False, "Standardise inputs per channel.")
flags.DEFINE_enum("precision", "default", ["default", "high", "highest"],
                  "Matmul/conv precision: default (JAX's: TF32 on Ampere+ GPUs, bf16 on TPUs, "
                  "float32 on CPU), high, or highest (full float32); see README 'Precision'.")
flags.DEFINE_string("platform", None, "cpu, gpu or tpu (default: what JAX finds).")
flags.DEFINE_boolean("distributed", False, "Join several processes with "
                     "jax.distributed.initialize(); on SLURM, Open MPI and TPU pods the three "
                     "flags below are detected (README 'Several processes and machines').")
flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 (implies --distributed; "
                    "default: detected, or $JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Number of processes (implies --distributed; "
                     "default: detected).")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes) "
                     "(implies --distributed; default: detected).")
flags.DEFINE_boolean("restart", False, "Discard the run already in --workdir (its config, "
                     "metrics, checkpoints, results) and train from scratch.")
flags.DEFINE_boolean("log_steps", False, "Also log every optimizer step to TensorBoard "
                     "(WORKDIR/tensorboard; every epoch is always logged).")
flags.DEFINE_boolean("check_only", False, "Check the whole configuration, print its canonical "
                     "form (what config.json would hold) and exit: no data, no files.")
flags.DEFINE_multi_string("sweep", [], "Sweep a config field or model argument; repeat for a "
                          "grid. Forms:\n" + sweep_syntax())


# Flags that are no TrainConfig field: how to run, not what.
RUN_FLAGS = ("workdir", "platform", "distributed", "coordinator", "num_processes", "process_id",
             "restart", "log_steps", "check_only", "sweep")


class BadFlag(Exception):
    """A bad flag value: ``str()`` is ``--FLAG=VALUE: PROBLEM``."""

    def __init__(self, flag: str | None, value, problem: str):
        super().__init__(problem if flag is None else
                         f"--{flag}={'' if value is None else value}: {problem}")


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # a bare word such as elu


def _pairs(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadFlag(flag, item, "must be name=value (a Python literal or a bare word), "
                          "e.g. features=(32,64)")
        out[name.strip()] = _literal(value.strip())
    return out


def _flag_of(error) -> BadFlag:
    """The flag behind a ``ConfigError`` (its dotted field), as a ``BadFlag``."""
    head, _, key = error.field.partition(".")
    if head in ("model_kwargs", "optimizer_kwargs") and key:
        flag = "model_arg" if head == "model_kwargs" else "optimizer_arg"
        return BadFlag(flag, f"{key}={error.value!r}", error.problem)
    if head == "early_stopping" and key:
        return BadFlag(f"es_{key}", error.value, error.problem)
    return BadFlag(error.field, error.value, error.problem)


def config_from_flags():
    """Builds the TrainConfig (raises BadFlag naming the flag on bad values)."""
    from cnn_jax.config import ConfigError, EarlyStoppingConfig, TrainConfig

    if not FLAGS.early_stopping:
        for name in ("es_monitor", "es_min_delta", "es_patience", "es_mode", "es_baseline",
                     "es_restore_best_weights", "es_start_from_epoch"):
            if FLAGS[name].present:
                raise BadFlag(name, FLAGS[name].value, "has no effect without --early_stopping")
    if FLAGS["validation_fraction"].present and FLAGS.validation != "holdout":
        raise BadFlag("validation_fraction", FLAGS.validation_fraction,
                      "has no effect without --validation=holdout")
    for name in ("data_dir", "model_module"):
        if FLAGS[name].value == "":
            raise BadFlag(name, "", "is empty; give a value, or leave the flag out")
    try:
        es = None
        if FLAGS.early_stopping:
            es = EarlyStoppingConfig(
                monitor=FLAGS.es_monitor, min_delta=FLAGS.es_min_delta,
                patience=FLAGS.es_patience, mode=FLAGS.es_mode, baseline=FLAGS.es_baseline,
                restore_best_weights=FLAGS.es_restore_best_weights,
                start_from_epoch=FLAGS.es_start_from_epoch)
        return TrainConfig(
            model=FLAGS.model, model_kwargs=_pairs(FLAGS.model_arg, "model_arg"),
            model_module=FLAGS.model_module,
            dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, validation=FLAGS.validation,
            validation_fraction=FLAGS.validation_fraction, batch_size=FLAGS.batch_size,
            epochs=FLAGS.epochs, drop_remainder=FLAGS.drop_remainder, optimizer=FLAGS.optimizer,
            learning_rate=FLAGS.learning_rate,
            optimizer_kwargs=_pairs(FLAGS.optimizer_arg, "optimizer_arg"), loss=FLAGS.loss,
            early_stopping=es,
            seed=FLAGS.seed, num_devices=FLAGS.num_devices,
            checkpoint_every=FLAGS.checkpoint_every, standardize=FLAGS.standardize,
            precision=FLAGS.precision, num_seeds=FLAGS.num_seeds)
    except ConfigError as e:
        raise _flag_of(e) from None


def checked_config(argv):
    """``(config, sweep axes)`` from the parsed flags, checked before any data is loaded,
    anything compiled or written (every sweep member too; raises BadFlag)."""
    if len(argv) > 1:
        raise BadFlag(None, None, f"unexpected arguments {argv[1:]} (flags start with --)")
    if not FLAGS.workdir:
        raise BadFlag("workdir", FLAGS.workdir, "is required: the folder of the run "
                      "(set it in the flagfile)")
    if os.path.exists(FLAGS.workdir) and not os.path.isdir(FLAGS.workdir):
        raise BadFlag("workdir", FLAGS.workdir, "is a file; give a folder (new or a run's)")
    if FLAGS.platform is not None and FLAGS.platform not in ("cpu", "gpu", "tpu"):
        raise BadFlag("platform", FLAGS.platform, "must be cpu, gpu or tpu")
    if FLAGS.restart and (FLAGS.sweep or FLAGS.num_seeds != 1):
        raise BadFlag("restart", True, "is for single runs; delete the sweep's (or seeds') "
                      "folder instead")
    config = config_from_flags()
    from cnn_jax.training import distributed

    join = (FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    try:
        distributed.check_arguments(*join)
    except ValueError as e:
        raise BadFlag(None, None, f"--{e}") from None
    import jax

    if FLAGS.platform is not None:
        jax.config.update("jax_platforms", FLAGS.platform)
    if (FLAGS.distributed or any(v is not None for v in join)) and not FLAGS.check_only:
        distributed.initialize(*join)  # before the checks below start JAX's backend
    from cnn_jax.config import ConfigError, config_diff
    from cnn_jax.training import loop, sweep, validate

    try:
        validate.check_config(config)
    except ConfigError as e:
        raise _flag_of(e) from None
    axes = []
    for spec in FLAGS.sweep:
        try:
            axes.append(sweep.parse_sweep(spec))
            sweep.check_axes(config, axes)
        except ValueError as e:
            raise BadFlag("sweep", spec, str(e)) from None
    for assignment in sweep.members(axes) if axes else ():
        try:
            validate.check_config(config.replace(**assignment))
        except ConfigError as e:  # blame the --sweep whose name the bad field carries
            spec = next((spec for spec, (name, _) in zip(FLAGS.sweep, axes, strict=True)
                         if e.field.rpartition(".")[2] == name), FLAGS.sweep[0])
            member = ", ".join(f"{k}={v!r}" for k, v in assignment.items())
            raise BadFlag("sweep", spec, f"member {member}: {e}") from None
    single = not FLAGS.sweep and config.num_seeds == 1
    saved = loop.saved_config(FLAGS.workdir) if single else None
    if saved is not None and not FLAGS.restart:
        diff = config_diff(saved, config.to_dict())
        if diff:
            raise BadFlag("workdir", FLAGS.workdir, "holds a run with another configuration "
                          f"(saved -> new: {'; '.join(diff)}); use a new --workdir, or "
                          "--restart to discard that run")
    return config, axes


def flagfile_first(argv: list[str]) -> list[str]:
    """``argv`` with its ``--flagfile`` arguments moved to the front (after the program),
    so that every other flag on the command line overrides the flagfile's value, whether it
    stands before or after ``--flagfile`` (absl lets the later one win).

    >>> flagfile_first(["train.py", "--epochs=1", "--flagfile=f.flags", "--seed=2"])
    ['train.py', '--flagfile=f.flags', '--epochs=1', '--seed=2']
    """
    files, rest, i = [], [], 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg.lstrip("-").startswith("flagfile="):
            files.append(arg)
        elif arg.lstrip("-") == "flagfile" and arg.startswith("-") and i + 1 < len(argv):
            files += argv[i:i + 2]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return argv[:1] + files + rest


def graceful_interrupt() -> threading.Event:
    """First Ctrl-C: finish the epoch, checkpoint, stop. A second one stops at once."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("interrupt: stopping after this epoch's checkpoint (Ctrl-C again: now)",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    return stop


def interrupted(error: BaseException) -> int:
    print(f"{error or 'interrupted'}; rerun the same command to resume", file=sys.stderr)
    return 130



def main(argv):
    # Our progress lines on stderr, plain; libraries (jax, orbax) only from warnings up.
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        config, axes = checked_config(argv)
    except BadFlag as e:
        usage_error(str(e))
    if FLAGS.check_only:
        print(json.dumps(config.to_dict(), sort_keys=True))
        return 0
    import jax

    from cnn_jax import data, training
    from cnn_jax.training import sweep
    from cnn_jax.training.checkpoint import CheckpointError
    show_progress()
    logging.getLogger("cnn_jax").info("devices: %s", jax.devices())
    stop = graceful_interrupt()
    try:
        if not axes and config.num_seeds == 1:
            results = training.fit(config, FLAGS.workdir, should_stop=stop.is_set,
                                   restart=FLAGS.restart, log_steps=FLAGS.log_steps)
        else:
            sweep.run_sweep(config, axes, FLAGS.workdir, should_stop=stop.is_set)
    except KeyboardInterrupt as e:
        return interrupted(e)
    except (data.DatasetNotFound, data.IdxError) as e:  # the message says how to fix it
        usage_error(f"--dataset={config.dataset}: {e}")
    except CheckpointError as e:  # the message names the folder and what to do
        fail(str(e))
    if axes or config.num_seeds > 1:
        with open(f"{FLAGS.workdir}/summary.md") as f:
            print(f.read())
        return 0
    print(f"{FLAGS.workdir}: {results['status']} after {results['epochs_run']} epochs; "
          f"final weights (epoch {results.get('final_weights_epoch', results['best_epoch'])}) "
          f"re-evaluated: train_loss {results['train_loss']:.4f}  "
          f"train_acc {results['train_accuracy']:.4f}  valid_loss {results['valid_loss']:.4f}"
          f"  valid_acc {results['valid_accuracy']:.4f}  ({results['wall_time']:.1f} s)")
    return 1 if results["status"] == "non_finite_loss" else 0


if __name__ == "__main__":
    sys.argv[:] = flagfile_first(sys.argv)
    run(main)
